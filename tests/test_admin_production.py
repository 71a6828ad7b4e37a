"""The admin behind a proxy, in production: HTTPS origins, a login throttle that slows
guessing but lets the real user back in, hashing that does not stall other requests,
Secure cookies, 400 for bad list parameters, formula-safe CSV export."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from piccolo.apps.user.tables import BaseUser

from agent_app import runs
from agent_app.admin import create_app
from agent_app.admin_security import (
    CSV_CELL_JS,
    AdminConfigError,
    AdminUser,
    LoginThrottle,
    csv_cell,
)
from tests.test_admin import csrf, login, user

HOST = "admin.example.com"


class Clock:
    """A clock the test moves by hand (the throttle's window without waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(app: Any, address: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://testserver",
    )


def _set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def _https_login(
    c: httpx.AsyncClient, name: str, password: str, origin: str
) -> tuple[httpx.Response, list[str]]:
    """Log in as a browser behind a TLS-terminating proxy would: the csrftoken cookie is
    Secure, so it is sent by hand over the test's plain connection."""
    proxied = {"X-Forwarded-Proto": "https"}
    meta = await c.get("/public/meta/", headers=proxied)
    cookies = _set_cookies(meta)
    token = re.search(r"csrftoken=([^;]+)", " ".join(cookies))
    assert token, cookies
    response = await c.post(
        "/public/login/",
        json={"username": name, "password": password},
        headers={**proxied, "Origin": origin, "Referer": f"{origin}/",
                 "X-CSRFToken": token.group(1), "Cookie": f"csrftoken={token.group(1)}"},
    )  # fmt: skip
    return response, cookies + _set_cookies(response)


async def test_production_login_works_behind_https_and_every_cookie_is_secure() -> None:
    app = create_app(
        production=True, allowed_hosts=[HOST], trusted_proxies=["127.0.0.1"],
        throttle=LoginThrottle(),
    )  # fmt: skip
    name, password = await user(admin=True)
    async with _client(app) as c:
        response, cookies = await _https_login(c, name, password, f"https://{HOST}")
        assert response.status_code == 200, response.text
        names = {cookie.split("=", 1)[0] for cookie in cookies}
        assert {"csrftoken", "id"} <= names
        assert all("secure" in cookie.lower() for cookie in cookies), cookies
        forged, _ = await _https_login(c, name, password, "https://evil.example")
        assert forged.status_code == 403


async def test_production_without_allowed_hosts_is_refused_at_start() -> None:
    with pytest.raises(AdminConfigError, match="allowed_hosts"):
        create_app(production=True)


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored() -> None:
    # Without a trusted proxy the request stays http: the origin check does not apply,
    # and the forwarded headers change nothing (the login works as on plain http).
    app = create_app(allowed_hosts=[HOST], throttle=LoginThrottle())
    name, password = await user(admin=True)
    async with _client(app, "203.0.113.7") as c:
        token = await csrf(c)
        response = await c.post(
            "/public/login/", json={"username": name, "password": password},
            headers={"X-CSRFToken": token, "X-Forwarded-Proto": "https",
                     "Origin": "https://evil.example"},
        )  # fmt: skip
        assert response.status_code == 200


async def test_guessing_is_slowed_per_account_and_address_but_the_user_gets_back_in() -> None:
    clock = Clock()
    app = create_app(throttle=LoginThrottle(per_account=3, per_address=5, window=60, clock=clock))
    alice, alice_pw = await user(admin=True)
    bob, _ = await user(admin=True)
    async with _client(app) as c:
        for _ in range(3):
            assert (await login(c, alice, "wrong")).status_code == 401
        blocked = await login(c, alice, alice_pw)  # even the right password waits
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= 60
        token = await csrf(c)
        spoofed = await c.post(
            "/public/login/", json={"username": alice, "password": alice_pw},
            headers={"X-CSRFToken": token, "X-Forwarded-For": "198.51.100.99"},
        )  # fmt: skip
        assert spoofed.status_code == 429  # a forged address buys nothing
        # the address's own limit: two more failures on another account, then it waits
        for _ in range(2):
            assert (await login(c, bob, "wrong")).status_code == 401
        assert (await login(c, bob, "wrong")).status_code == 429
        clock.now += 61  # the window slides past the failures
        assert (await login(c, alice, alice_pw)).status_code == 200
    async with _client(app, "192.0.2.50") as other:
        # another address is not held back by this one's failures
        assert (await login(other, bob, "wrong")).status_code == 401


async def test_a_trusted_proxy_forwards_client_addresses() -> None:
    app = create_app(
        trusted_proxies=["127.0.0.1"],
        throttle=LoginThrottle(per_account=100, per_address=2, window=60, clock=Clock()),
    )
    names = [(await user(admin=False))[0] for _ in range(4)]

    async def attempt(c: httpx.AsyncClient, name: str, address: str) -> int:
        token = await csrf(c)
        response = await c.post(
            "/public/login/", json={"username": name, "password": "wrong"},
            headers={"X-CSRFToken": token, "X-Forwarded-For": address},
        )  # fmt: skip
        return response.status_code

    async with _client(app) as c:
        assert [await attempt(c, n, "198.51.100.1") for n in names[:3]] == [401, 401, 429]
        assert await attempt(c, names[3], "198.51.100.2") == 401  # a different client


async def test_parallel_guesses_are_counted_before_they_finish() -> None:
    app = create_app(throttle=LoginThrottle(per_account=3, per_address=100, window=60))
    name, _ = await user(admin=True)
    async with _client(app) as c:
        token = await csrf(c)
        results = await asyncio.gather(*[
            c.post("/public/login/", json={"username": name, "password": f"guess{i}"},
                   headers={"X-CSRFToken": token})
            for i in range(8)
        ])  # fmt: skip
    codes = sorted(r.status_code for r in results)
    assert codes == [401] * 3 + [429] * 5


async def test_password_hashing_does_not_stop_other_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, release = threading.Event(), threading.Event()
    real = BaseUser.hash_password.__func__  # type: ignore[attr-defined]

    def gated(cls: type[BaseUser], *args: Any, **kwargs: Any) -> str:
        started.set()
        release.wait(60)  # hang guard: if this ran on the event loop, nothing else could
        return str(real(cls, *args, **kwargs))

    monkeypatch.setattr(AdminUser, "hash_password", classmethod(gated))
    app = create_app(throttle=LoginThrottle())
    name, password = await user(admin=True)
    async with _client(app) as c:
        await csrf(c)
        events: list[str] = []

        async def log_in() -> int:
            response = await login(c, name, password)
            events.append("login answered")
            return response.status_code

        pending = asyncio.create_task(log_in())
        assert await asyncio.to_thread(started.wait, 60), "the login never hashed"
        meta = await c.get("/public/meta/")
        events.append("meta answered")
        assert meta.status_code == 200
        release.set()
        assert await asyncio.wait_for(pending, 60) == 200
    assert events == ["meta answered", "login answered"]


@pytest.fixture
async def admin_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(throttle=LoginThrottle())
    name, password = await user(admin=True)
    async with _client(app) as c:
        assert (await login(c, name, password)).status_code == 200
        yield c


@pytest.mark.parametrize(
    "query",
    [
        "__order=no_such_column",
        "__order=-title,no_such_column",
        "__page=1000000000000000000000000000000",
        "__page=99999999999",
        "__page=0",
        "__page=-3",
        "__page_size=0",
        "__page_size=1000000000000",
    ],
)
async def test_bad_list_parameters_get_400(admin_client: httpx.AsyncClient, query: str) -> None:
    for path in ("/api/tables/feature_runs/", "/api/tables/feature_runs/count/"):
        response = await admin_client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.status_code, response.text)


async def test_a_page_that_is_not_a_number_is_a_client_error(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.get("/api/tables/feature_runs/?__page=abc")
    assert response.status_code == 422  # FastAPI's own validation, before ours


async def test_good_list_parameters_still_work(admin_client: httpx.AsyncClient) -> None:
    await runs.create_run("listed", "r", "u")
    response = await admin_client.get(
        "/api/tables/feature_runs/?__order=-created_at,title&__page=1&__page_size=5"
    )
    assert response.status_code == 200
    assert len(response.json()["rows"]) <= 5


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
PLAIN = ["plain", "a=b", "", "'quoted"]


def test_csv_cells_starting_a_formula_are_neutralised() -> None:
    assert [csv_cell(v) for v in FORMULAS] == ["'" + v for v in FORMULAS]
    assert [csv_cell(v) for v in PLAIN] == PLAIN
    assert csv_cell(-5) == -5  # numbers stay numbers


async def test_the_admins_csv_export_neutralises_formulas(
    admin_client: httpx.AsyncClient,
) -> None:
    page = (await admin_client.get("/")).text
    bundle_path = re.search(r'src="[^"]*?(assets/index-[^"]+\.js)"', page)
    assert bundle_path, page[:500]
    bundle = (await admin_client.get("/" + bundle_path.group(1))).text
    assert "agentAppCsvCell(H)" in bundle  # the export's cell formatter calls it
    assert "d(String(H)," not in bundle  # ...and the unescaped one is gone
    assert bundle.startswith(CSV_CELL_JS)
    # Run the very function the browser gets on the cells (node is the JS engine here).
    values: list[Any] = [*FORMULAS, *PLAIN, -5, 12.5]
    script = CSV_CELL_JS + f"console.log(JSON.stringify({json.dumps(values)}.map(agentAppCsvCell)))"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["'" + v for v in FORMULAS] + PLAIN + ["-5", "12.5"]
