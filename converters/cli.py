"""The ``tfedge-convert`` command, kept at its old import path; it lives in :mod:`tfedge.cli.convert`."""

from tfedge.cli.convert import build_parser, main  # noqa: F401

if __name__ == "__main__":
    import sys

    sys.exit(main())
