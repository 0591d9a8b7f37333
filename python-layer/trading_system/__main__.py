"""``python -m trading_system``: the command line (see :mod:`trading_system.cli`)."""

import sys

from trading_system.cli import main

sys.exit(main())
