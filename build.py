"""Entry point: `python build.py --help`."""

import sys

from yimatong.cli import main

if __name__ == "__main__":
    sys.exit(main())
