"""`fastmesh-proxy -c FILE -- APP ARGS...`: the app starts only once the proxy is ready,
gets the proxy's signals, and its exit status becomes the proxy's."""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path

from tests.support import EchoServer, require_binary, run_proxy

from ._topology import Ports, front_config


def _app(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(body))
    return ["--", sys.executable, str(script)]


def test_app_starts_after_ready_and_its_status_is_the_exit_status(
    echo: EchoServer, tmp_path: Path
) -> None:
    curl = require_binary("curl")
    ports = Ports.fresh()
    out = tmp_path / "out.txt"
    # The app's very first act is a request through the proxy: no retries, no sleeps.
    app = [
        "--",
        "sh",
        "-c",
        f"{curl} -sf http://127.0.0.1:{ports.listener}/healthz > {out}; exit 7",
    ]
    with run_proxy(front_config(ports, echo.port), extra_args=app, wait_ready=False) as p:
        assert p.wait_exit(timeout=30) == 7
    assert out.read_text() == "ok\n"


def test_app_requests_reach_the_upstream(echo: EchoServer, tmp_path: Path) -> None:
    ports = Ports.fresh()
    app = _app(
        tmp_path,
        f"""
        import json, os, urllib.request
        with urllib.request.urlopen("http://127.0.0.1:{ports.listener}/job") as r:
            assert json.load(r)["path"] == "/job"
        assert os.environ["FASTMESH_ADMIN_ADDRESS"] == "127.0.0.1:{ports.admin}"
        """,
    )
    with run_proxy(front_config(ports, echo.port), extra_args=app, wait_ready=False) as p:
        assert p.wait_exit(timeout=30) == 0
    assert [r.path for r in echo.requests] == ["/job"]


def test_sigterm_is_forwarded_and_the_proxy_serves_until_the_app_exits(
    echo: EchoServer, tmp_path: Path
) -> None:
    ports = Ports.fresh()
    ready, done = tmp_path / "ready", tmp_path / "done"
    app = _app(
        tmp_path,
        f"""
        import pathlib, signal, sys, time, urllib.request

        def on_term(signum, frame):
            # Shutting down, the app still talks through its sidecar.
            with urllib.request.urlopen("http://127.0.0.1:{ports.listener}/healthz") as r:
                pathlib.Path("{done}").write_text("TERM " + r.read().decode())
            sys.exit(3)

        signal.signal(signal.SIGTERM, on_term)
        pathlib.Path("{ready}").write_text("up")
        while True:
            time.sleep(0.1)
        """,
    )
    with run_proxy(front_config(ports, echo.port), extra_args=app) as p:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        p.send_signal(signal.SIGTERM)
        assert p.wait_exit(timeout=30) == 3
    assert done.read_text() == "TERM ok\n"


def test_app_killed_by_a_signal_exits_128_plus_n(echo: EchoServer, tmp_path: Path) -> None:
    ports = Ports.fresh()
    app = ["--", "sh", "-c", "kill -KILL $$"]
    with run_proxy(front_config(ports, echo.port), extra_args=app, wait_ready=False) as p:
        assert p.wait_exit(timeout=30) == 128 + signal.SIGKILL


def test_missing_app_exits_127(echo: EchoServer, tmp_path: Path) -> None:
    ports = Ports.fresh()
    app = ["--", str(tmp_path / "no-such-app")]
    with run_proxy(front_config(ports, echo.port), extra_args=app, wait_ready=False) as p:
        assert p.wait_exit(timeout=30) == 127
        assert "cannot start" in p.log()
