"""A door-daemon flow drawn by the real pygame display (dummy driver)."""

from pathlib import Path

from hardware.board import SimBoard
from hardware.display import open_display
from kiosk.config import DisplayConfig
from kiosk.daemon import DoorDaemon
from kiosk.screens import Screen
from tests.support.world import World


def test_pickup_flow_draws_the_expected_screens(tmp_path: Path) -> None:
    w = World(tmp_path / "k.db")
    cfg = w.cfg.replace("hardware", board="sim").replace("display", driver="dummy")
    board = SimBoard(cfg.hardware, cfg.lock, clock=w.clock, threads=False)
    display = open_display(DisplayConfig(driver="dummy"), site_name="测试店")
    shown: list[Screen] = []
    real_show = display.show

    def spy(screen: Screen) -> None:
        shown.append(screen)
        real_show(screen)

    display.show = spy  # type: ignore[method-assign]
    d = DoorDaemon(cfg, w.store, board, w.clock, display=display, synced=lambda: True)
    try:
        d.start()
        doc = w.add()
        import pyotp

        code = doc["pickup_no"] + pyotp.TOTP(doc["otp"]["secret"]).at(w.clock.wall())
        for k in code + "#":
            board.press(k, advance=w.clock.advance)
            d.drain()
        display.save_png(tmp_path / "accepted.png")
        board.set_door(True)
        d.drain()
        w.clock.advance(cfg.lock.held_open_s)
        d.tick()
        display.save_png(tmp_path / "close.png")
        kinds = [s.kind for s in shown]
        # idle, then typing screens counting up (the status corner may redraw one),
        # accepted, then close the door
        first_typing = kinds.index("typing")
        assert kinds[0] == "idle"
        typed = [s.typed for s in shown if s.kind == "typing"]
        assert sorted(set(typed)) == list(range(1, len(code) + 1)) and typed == sorted(typed)
        assert kinds.index("accepted") > first_typing
        assert kinds[-1] == "close_door"
        assert (tmp_path / "accepted.png").stat().st_size > 1000
        assert display.draw_count == len(shown)  # one draw per change, none more
    finally:
        board.close()
        display.close()
