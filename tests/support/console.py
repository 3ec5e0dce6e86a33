"""Helpers for the console's tests: an app with the console, accounts, logins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from hub import console as console_parts
from hub.console.accounts import hash_password
from hub.web import create_app
from tests.support.hub import FakeClock, context, write_config

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Env:
    client: TestClient
    ctx: Any
    clock: FakeClock
    published: list[tuple[str, bytes]]

    @property
    def console(self) -> Any:
        return self.ctx.console

    def add_account(self, name: str, role: str = "owner", password: str = PASSWORD) -> None:
        self.console.accounts.add(name, role, hash_password(password), self.clock())

    def login(self, name: str, password: str = PASSWORD, client: TestClient | None = None) -> Any:
        c = client or self.client
        c.cookies.clear()  # a fresh login, as on another phone
        page = c.get("/console/login")
        token = csrf_of(page.text)
        return c.post(
            "/console/login",
            data={"name": name, "password": password, "csrf": token},
            follow_redirects=False,
        )

    def csrf(self, path: str = "/console/account") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = {"csrf": self.csrf(), **(data or {})}
        return self.client.post(path, data=body, follow_redirects=False, **kw)


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no csrf field on the page"
    return m.group(1)


def make_env(
    tmp: Path,
    *,
    sites: tuple[str, ...] = ("shop-a", "shop-b"),
    extra: str = "",
    site_extra: str = "",
) -> Env:
    cfg_path = write_config(tmp, sites, extra=extra, site_extra=site_extra)
    clock = FakeClock()
    ctx = context(tmp, cfg_path, clock)
    published: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> bool:
        published.append((topic, payload))
        return True

    ctx.console = console_parts.build(ctx.cfg, ctx.archive.db, publish)
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1:8080")
    return Env(client, ctx, clock, published)
