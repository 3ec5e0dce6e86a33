"""``python -m kiosk.cli`` is the ``kiosk`` command."""

import sys

from kiosk.cli.main import main

sys.exit(main())
