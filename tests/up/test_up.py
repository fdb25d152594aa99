"""`fastmesh up` end to end, as a newcomer runs it: real control plane, real sidecars (ADS
only), the demo apps; then the subcommands against the running mesh, and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

UP = [sys.executable, "-m", "fastmesh", "up"]


def _ours(directory: Path) -> list[str]:
    """Command lines of live processes that mention `directory` (control plane, sidecars)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = next(
                line for line in (entry / "status").read_text().splitlines() if line[:6] == "State:"
            )
        except (OSError, StopIteration):
            continue
        if str(directory) in cmdline and "Z" not in state.split()[1]:
            found.append(cmdline)
    return found


def _no_orphans(directory: Path) -> None:
    deadline = time.monotonic() + 15
    while _ours(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(directory) == []


def _run(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UP, *args, "--dir", str(directory)], capture_output=True, text=True, timeout=120
    )


def test_smoke_sends_traffic_to_every_version_and_exits_clean(tmp_path: Path) -> None:
    result = _run("--smoke", directory=tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "smoke: OK" in out
    assert "Traffic: 40 requests" in out and "40 requests, 0 errors" in out
    for version in ("v1", "v2", "v3"):
        row = re.search(rf"^    {version} +(\d+) +(\d+)", out, re.MULTILINE)
        assert row, out
        assert int(row[1]) > 0 and row[1] == row[2], out  # sidecar stats agree with answers
    assert sum(int(n) for n in re.findall(r"^    v\d +(\d+)", out, re.MULTILINE)) == 40
    assert "Traceback" not in out + result.stderr
    for name in ("frontend-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3"):
        assert (tmp_path / "sidecars" / f"{name}.yaml").exists()
    # The sidecars are bootstrapped with ADS only: no listener, no cluster but the xDS one.
    sidecar = (tmp_path / "sidecars" / "reviews-v2.yaml").read_text()
    assert "listeners" not in sidecar and sidecar.count("- name:") == 1
    _no_orphans(tmp_path)


def _start_until(directory: Path, marker: str) -> tuple[subprocess.Popen[str], str]:
    """`fastmesh up` started, its output read until a line with `marker`."""
    proc = subprocess.Popen(
        [*UP, "--dir", str(directory)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    out = ""
    deadline = time.monotonic() + 120
    while marker not in out:
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, out
        out += line
    return proc, out


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, str]]:
    """`fastmesh up` running (until its walkthrough is printed); its output so far."""
    proc, out = _start_until(tmp_path, "Ctrl-C stops everything.")
    try:
        yield proc, tmp_path, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_during_start_up_stops_everything(tmp_path: Path) -> None:
    proc, _ = _start_until(tmp_path, "waiting for every sidecar")
    try:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping:" in rest and "Traceback" not in rest
    _no_orphans(tmp_path)


def _routed_versions(directory: Path, n: int = 20) -> dict[str, int]:
    out = _run("traffic", "-n", str(n), directory=directory).stdout
    return {v: int(c) for v, c in re.findall(r"^    (v\d) +\d+ +(\d+)", out, re.MULTILINE)}


def test_shift_fault_and_ctrl_c(mesh: tuple[subprocess.Popen[str], Path, str]) -> None:
    proc, directory, out = mesh
    assert "Traceback" not in out
    assert f"fastmesh up shift v3=100 --dir {directory}" in out

    assert _run("shift", "v3=100", directory=directory).returncode == 0
    deadline = time.monotonic() + 30
    while _routed_versions(directory) != {"v1": 0, "v2": 0, "v3": 20}:
        assert time.monotonic() < deadline, "the canary shift never took effect"
        time.sleep(0.5)

    bad = _run("shift", "v2=60,v3=60", directory=directory)
    assert bad.returncode == 1 and "sum to 120, not 100" in bad.stdout

    assert _run("fault", "ratings", "--abort", "503", directory=directory).returncode == 0
    deadline = time.monotonic() + 30
    while "fault filter abort" not in (t := _run("traffic", "-n", "3", directory=directory)).stdout:
        assert time.monotonic() < deadline, "the fault never took effect"
        time.sleep(0.5)
    assert t.returncode == 1  # failed requests make `traffic` exit 1
    assert _run("fault", "ratings", "--off", directory=directory).returncode == 0

    # an AuthorizationPolicy: frontend's identity denied on details (mTLS says who calls)
    assert _run("deny", "details", "--from", "frontend", directory=directory).returncode == 0
    deadline = time.monotonic() + 30
    while (
        "details: HTTP 403: RBAC: access denied"
        not in _run("traffic", "-n", "3", directory=directory).stdout
    ):
        assert time.monotonic() < deadline, "the policy never took effect"
        time.sleep(0.5)
    assert _run("deny", "details", "--off", directory=directory).returncode == 0

    # mesh-wide STRICT: plaintext to an inbound port gets no HTTP answer; the mesh still works
    frontend = re.search(r"sidecar (127\.0\.\d+\.\d+): inbound :(\d+)", out)
    assert frontend is not None, out
    plain = f"http://{frontend[1]}:{frontend[2]}/"
    assert httpx.get(plain, headers={"host": "frontend"}).status_code == 200  # PERMISSIVE
    assert _run("mtls", "strict", directory=directory).returncode == 0

    def refused() -> bool:
        try:
            httpx.get(plain, headers={"host": "frontend"})
        except httpx.HTTPError:
            return True
        return False

    deadline = time.monotonic() + 30
    while not refused():
        assert time.monotonic() < deadline, "STRICT never took effect"
        time.sleep(0.5)
    assert _run("traffic", "-n", "5", directory=directory).returncode == 0

    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert rest.rstrip().endswith("stopped.") and "Traceback" not in rest
    _no_orphans(directory)
    gone = _run("traffic", directory=directory)
    assert gone.returncode == 1 and "no mesh running" in gone.stdout


def test_a_problem_at_start_is_one_line_not_a_stack_trace(tmp_path: Path) -> None:
    (tmp_path / "ca").write_text("a file where the CA directory goes")
    result = _run(directory=tmp_path)
    assert result.returncode == 1
    assert "fastmesh up: [Errno 17] File exists" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    _no_orphans(tmp_path)
