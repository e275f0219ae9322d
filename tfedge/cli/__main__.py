"""``python -m tfedge.cli``: the same as the ``tfedge`` command."""

import sys

from . import main

sys.exit(main())
