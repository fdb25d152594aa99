"""Starting, probing, measuring and stopping the processes under test.

CPU time and peak RSS come from /proc and cover the whole process tree the bench
started (for fastmesh: the Python interpreter, the Rust runtime threads, and any child).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a child belongs to the thread that forked it)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree (all threads, dead threads included)."""
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the ")": state is field 3, utime 14, stime 15 -> indexes 11 and 12
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds spent not idle, all CPUs together, since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_cpu_seconds() -> float:
    """utime + stime of this process's waited-for children (the load generators)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) summed over the process tree, in MiB."""
    total = 0
    for p in tree(pid):
        try:
            total += _status_kb(p, "VmHWM")
        except OSError:
            continue
    return total / 1024


def rss_mb(pid: int) -> float:
    """VmRSS (resident now) summed over the process tree, in MiB."""
    total = 0
    for p in tree(pid):
        try:
            total += _status_kb(p, "VmRSS")
        except OSError:
            continue
    return total / 1024


def http_get(url: str, host: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """One plain HTTP/1.1 GET; (status, body), or (0, error text) when it cannot connect."""
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())
    except (OSError, ValueError) as e:
        return 0, str(e).encode()


class ProcError(RuntimeError):
    """A process under test failed to start, to become ready, or died."""


@dataclass
class Proc:
    """One started process, its log file and how it was pinned."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # reap any straggler in the group (e.g. nginx's worker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def start(name: str, argv: list[str], cpus: str | None, logdir: Path) -> Proc:
    """Start ``argv`` in its own process group, pinned to ``cpus`` (taskset list) if given.

    taskset exec()s the command, so the pid we hold is the proxy's own pid.
    """
    full = (["taskset", "-c", cpus] if cpus else []) + argv
    log = logdir / f"{name}.log"
    fh = log.open("wb")
    try:
        popen = subprocess.Popen(
            full,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        fh.close()
    return Proc(name=name, argv=full, popen=popen, log=log)


def wait_ready(proc: Proc, url: str, timeout: float, host: str | None = None) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took. Raises ProcError."""
    t0 = time.monotonic()
    last = b""
    while time.monotonic() - t0 < timeout:
        if not proc.alive():
            raise ProcError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        status, body = http_get(url, host=host, timeout=1.0)
        if status == 200:
            return time.monotonic() - t0
        last = body
        time.sleep(0.05)
    raise ProcError(
        f"{proc.name} not ready at {url} after {timeout:.0f}s (last: {last[:200]!r}):\n"
        f"{proc.log_tail()}"
    )
