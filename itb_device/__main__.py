"""``python -m itb_device``: the ``itb`` command."""

import sys

from itb_device.cli import main

if __name__ == "__main__":
    sys.exit(main())
