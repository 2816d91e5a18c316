"""``python -m itb_device.cli``: the same command line as ``itb``."""

import sys

from itb_device.cli.main import main

sys.exit(main())
