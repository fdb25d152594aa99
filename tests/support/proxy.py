"""Run `fastmesh-proxy` or real `envoy` on an Envoy bootstrap config, as a context manager.

    with run_proxy(cfg, binary="envoy") as proxy:
        httpx.get(proxy.url(listener_port, "/"))

Readiness is the admin `/ready` answering 200 (polled against a deadline, no fixed
sleeps). On exit the process gets SIGTERM (then SIGKILL); if it died on its own, or the
body raised, the tail of its log is attached to the failure.
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pytest
import yaml

from .envoy_config import to_yaml

Binary = Literal["fastmesh-proxy", "envoy"]
ConfigSource = Path | str | dict[str, Any]

_counter = itertools.count()
_BASE_ID_START = (os.getpid() % 4000) * 100


#: Parametrize a test over both proxies: real Envoy (the oracle) and fastmesh-proxy.
BINARY_PARAMS = [
    pytest.param("envoy", marks=pytest.mark.envoy, id="envoy"),
    pytest.param("fastmesh-proxy", id="fastmesh"),
]


class ProxyError(RuntimeError):
    """The proxy did not start, or died while a test used it."""


def require_binary(binary: str) -> str:
    """Full path of `binary`, or skip the test (a failure under FASTMESH_FORBID_SKIPS=1)."""
    found = shutil.which(binary)
    if found is None:
        pytest.skip(reason=f"{binary} is not on PATH")
    return found


def admin_port_of(config: dict[str, Any]) -> int:
    """The admin port of an Envoy bootstrap dict (`admin.address.socket_address`)."""
    try:
        return int(config["admin"]["address"]["socket_address"]["port_value"])
    except (KeyError, TypeError) as exc:
        raise ValueError("the config has no admin.address.socket_address.port_value") from exc


@dataclass
class ProxyProcess:
    """A running proxy process and what tests need to talk to it."""

    binary: str
    config_path: Path
    admin_port: int
    log_path: Path
    proc: subprocess.Popen[bytes]
    expect_exit: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @staticmethod
    def url(port: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{port}{path}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def counter(self, name: str) -> int:
        """A counter from the admin `/stats`; 0 when the proxy has not created it yet."""
        pattern = "^" + re.escape(name) + "$"
        status, body = self.admin_get(f"/stats?filter={quote(pattern)}")
        assert status == 200, body
        for line in body.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def admin_get(self, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
        """GET an admin path; returns (status, body text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def write_config(self, config: str | dict[str, Any]) -> None:
        """Atomically replace the config file (write a sibling, then rename over it)."""
        text = config if isinstance(config, str) else to_yaml(config)
        tmp = self.config_path.with_name(f".{self.config_path.name}.{next(_counter)}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def send_signal(self, sig: int) -> None:
        """Signal the proxy; SIGTERM/SIGINT mark its exit as expected."""
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.expect_exit = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit; returns its exit status."""
        self.expect_exit = True
        return self.proc.wait(timeout=timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            if self.proc.poll() is not None:
                raise ProxyError(
                    f"{self.binary} exited with status {self.proc.returncode} before it was "
                    f"ready\n--- log ---\n{self.log_tail()}"
                )
            try:
                status, body = self.admin_get("/ready", timeout=1.0)
                if status == 200:
                    return
                last_error = f"/ready answered {status} {body.strip()!r}"
            except OSError as exc:
                last_error = f"/ready: {exc!r}"
            if time.monotonic() > deadline:
                raise ProxyError(
                    f"{self.binary} not ready after {timeout}s ({last_error})\n"
                    f"--- log ---\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def proxy_command(
    binary: Binary | str,
    config_path: Path,
    *,
    concurrency: int = 1,
    log_level: str = "warning",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line for `binary`; the same Envoy flags for both (fastmesh is a drop-in)."""
    exe = require_binary(binary)
    cmd = [exe, "-c", str(config_path), "--concurrency", str(concurrency), "-l", log_level]
    if Path(binary).name == "envoy":
        base_id = _BASE_ID_START + next(_counter)
        cmd += ["--base-id", str(base_id), "--disable-hot-restart"]
    cmd += list(extra_args)
    return cmd


@contextmanager
def run_proxy(
    config: ConfigSource,
    *,
    binary: Binary | str = "fastmesh-proxy",
    concurrency: int = 1,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
    log_level: str = "warning",
    ready_timeout: float = 30.0,
    wait_ready: bool = True,
) -> Iterator[ProxyProcess]:
    """Start `binary` on `config` (a file path, YAML text or a bootstrap dict), wait for
    its admin `/ready`, yield it, and stop it on exit.

    A dict or text is written to `workdir` (a fresh temporary directory by default), so
    `ProxyProcess.write_config` can rewrite it for live-reload tests.
    """
    with tempfile.TemporaryDirectory(prefix="fastmesh-test-") as scratch:
        base = workdir if workdir is not None else Path(scratch)
        n = next(_counter)
        name = Path(binary).name
        if isinstance(config, Path):
            config_path = config
            parsed = yaml.safe_load(config.read_text())
        else:
            text = config if isinstance(config, str) else to_yaml(config)
            parsed = yaml.safe_load(text)
            config_path = base / f"{name}-{n}.yaml"
            config_path.write_text(text)
        log_path = base / f"{name}-{n}.log"
        cmd = proxy_command(
            binary, config_path, concurrency=concurrency, log_level=log_level, extra_args=extra_args
        )
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proxy = ProxyProcess(
            binary=name,
            config_path=config_path,
            admin_port=admin_port_of(parsed),
            log_path=log_path,
            proc=proc,
        )
        try:
            if wait_ready:
                proxy.wait_ready(ready_timeout)
            yield proxy
        except BaseException as exc:
            state = "running" if proxy.alive() else f"exited with status {proxy.proc.returncode}"
            exc.add_note(f"--- {name} ({state}) log tail: {' '.join(cmd)} ---\n{proxy.log_tail()}")
            raise
        finally:
            died = proxy.proc.poll() is not None and not proxy.expect_exit
            returncode = proxy.proc.returncode
            proxy.stop()
        if died:
            raise ProxyError(
                f"{name} died during the test (status {returncode})\n"
                f"--- log ---\n{proxy.log_tail()}"
            )
