"""Helpers shared by the tests and the benchmarks (nothing here is a test).

- :mod:`tests.support.broker`: a real Mosquitto on a free loopback port
- :mod:`tests.support.polling`: bounded polling for real processes, de-duplication
- :mod:`tests.support.world`: a fresh store, a fake clock and the real engine
- :mod:`tests.support.door`: the door daemon on mock pins (the ``Rig``)
- :mod:`tests.support.procs`: real ``kiosk`` subprocesses and their configs
- :mod:`tests.support.harness`, :mod:`tests.support.flood`: reliability campaigns
- :mod:`tests.support.attacks`: the simulated attacker and vandal
- :mod:`tests.support.sync`, :mod:`tests.support.ctl`, :mod:`tests.support.ctl_model`,
  :mod:`tests.support.deploy`: the sync agent's, kioskctl's and the installer's helpers
"""
