"""The hub side of pickup-kiosk: what runs off the kiosk.

- :mod:`hub.ctl`: ``kioskctl``, the owner's command line (needs only the
  base install: no pygame, no gpiozero).

Built on :mod:`protocol`; never imports ``hardware`` (docs/design.md,
"Layering").
"""
