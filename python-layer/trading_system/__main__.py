"""``python -m trading_system``: the command line (the package :mod:`trading_system.cli`)."""

import sys

from trading_system.cli import main

sys.exit(main())
