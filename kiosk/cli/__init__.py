"""The kiosk's composition root: the ``kiosk`` command line and daemon wiring.

This subpackage is the only kiosk-side code that imports ``hardware`` and
``sync`` (docs/design.md, "Layering"): :mod:`kiosk.cli.shell` assembles the
door daemon and the sync agent with one ordered start and one reverse stop,
:mod:`kiosk.cli.simulator` is ``kiosk run --simulate``, :mod:`kiosk.cli.doctor`
runs the health checks every part registers, and :mod:`kiosk.cli.main`
parses the command line.
"""

from kiosk.cli.main import main

__all__ = ["main"]
