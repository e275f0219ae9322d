"""``python -m rpi_runner`` is ``tfedge-pi``."""

import sys

from .cli import main

sys.exit(main())
