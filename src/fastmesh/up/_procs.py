"""The mesh's child processes: started in their own process group (so a terminal's Ctrl-C
reaches only `fastmesh up`, which then stops them in order), logs to files, stopped with
SIGTERM and, after a grace period, SIGKILL. Nothing outlives `fastmesh up`."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import trio

__all__ = ["Children"]


@dataclass
class Children:
    logs: Path
    running: dict[str, trio.Process] = field(default_factory=dict)

    async def start(self, name: str, *args: str) -> trio.Process:
        """`python -m ARGS...`, its stdout and stderr to `<logs>/<name>.log`."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("wb") as log:  # fresh each run
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", *args], stdout=log, stderr=log, process_group=0
            )
        self.running[name] = proc
        return proc

    def exited(self) -> list[str]:
        """Children that stopped on their own, with their status."""
        return [
            f"{name} exited with status {p.returncode} (log: {self.logs / name}.log)"
            for name, p in self.running.items()
            if p.returncode is not None
        ]

    async def stop(self, names: list[str], grace: float = 10.0) -> None:
        """SIGTERM these children, wait up to `grace` seconds, then SIGKILL the rest."""
        procs = [self.running[n] for n in names if n in self.running]
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            for p in procs:
                await p.wait()
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
