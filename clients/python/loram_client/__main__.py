"""``python3 -m loram_client``: the ``loram`` command line."""

import sys

from .cli import main

sys.exit(main())
