"""``python -m adadim``: the same entry point as the ``adadim`` console script."""

import sys

from adadim.cli import main

if __name__ == "__main__":
    sys.exit(main())
