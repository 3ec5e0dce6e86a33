"""pickup-kiosk: offline-first firmware for the door of a 24-hour pickup point.

The ``kiosk`` package is the domain and the door daemon. Its core (config,
store, codes, throttle, clock, audit, door state machine, screens) imports
neither ``hardware`` nor ``sync``; those sit at the edges and import it.
"""

__version__ = "0.1.0"
