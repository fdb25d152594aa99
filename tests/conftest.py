"""Fixtures shared by every test directory. Helpers live in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support import BINARY_PARAMS, EchoServer, ProxyProcess, require_binary, run_proxy


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Under FASTMESH_FORBID_SKIPS=1 (scripts/test.sh, CI), where every binary and module is
    installed, a skipped test is a failure: a skip there would hide a broken install."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and os.environ.get("FASTMESH_FORBID_SKIPS") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be skipped: {report.longrepr}"


@pytest.fixture(params=BINARY_PARAMS)
def binary(request: pytest.FixtureRequest) -> str:
    """The proxy binary under test; skipped when it is not installed."""
    name: str = request.param
    require_binary(name)
    return name


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """Our HTTP/1.1 + h2c echo upstream (tests/support/echo.py), named "echo"."""
    with EchoServer("echo") as server:
        yield server


StartProxy = Callable[..., ProxyProcess]


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """`start_proxy(config, binary=..., **run_proxy_kwargs)`: started now, stopped at teardown."""
    with ExitStack() as stack:

        def start(config: Any, **kwargs: Any) -> ProxyProcess:
            kwargs.setdefault("workdir", tmp_path)
            return stack.enter_context(run_proxy(config, **kwargs))

        yield start
