"""Hardware edges of the kiosk: gpiozero devices, matrix keypad, keyboard
input and the simulated board.

Submodules are imported on demand (``hardware.board``, ``hardware.devices``,
``hardware.keypad``, ``hardware.keyboard``); importing this package loads
nothing, so the keyboard reader works without gpiozero.
"""
