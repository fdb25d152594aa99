"""A real etcd 3 cluster of three members on loopback (Debian's `etcd-server`) for the tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port

ETCD = shutil.which("etcd")


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def healthy(self) -> bool:
        try:
            answer = httpx.get(f"{self.client_url}/health", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(answer.get("health") == "true")


@dataclass
class EtcdCluster:
    """Three members, fast elections (heartbeat 50 ms, election 500 ms), so leases as short as
    1 s are allowed and a dead member's place is taken quickly."""

    root: Path
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members if m.process is not None]

    def start(self) -> EtcdCluster:
        assert ETCD is not None
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            self.members.append(
                Member(
                    f"m{i + 1}",
                    free_port(),
                    free_port(),
                    self.root / f"m{i + 1}",
                    self.root / f"m{i + 1}.log",
                )
            )
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            argv = [
                ETCD,
                f"--name={m.name}",
                f"--data-dir={m.data_dir}",
                f"--listen-client-urls={m.client_url}",
                f"--advertise-client-urls={m.client_url}",
                f"--listen-peer-urls={m.peer_url}",
                f"--initial-advertise-peer-urls={m.peer_url}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                "--initial-cluster-token=fastmesh-test",
                "--heartbeat-interval=50",
                "--election-timeout=500",
                "--log-level=warn",
            ]
            with m.log.open("wb") as log:
                m.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_healthy(self.members)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, members: list[Member], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(m.healthy() for m in members):
            for m in members:
                if m.process is not None and m.process.poll() is not None:
                    raise AssertionError(f"etcd {m.name} exited: {m.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd cluster not healthy after {timeout}s")
            time.sleep(0.05)

    def kill(self, member: Member) -> None:
        assert member.process is not None
        member.process.kill()
        member.process.wait()
        member.process = None

    def stop(self) -> None:
        """SIGKILL every member: their data is thrown away (SIGTERM costs seconds, as the
        leader tries to hand over leadership to members already stopping)."""
        for m in self.members:
            if m.process is not None:
                self.kill(m)


def etcd_cluster(root: Path) -> EtcdCluster:
    if ETCD is None:
        pytest.skip(reason="etcd is not installed (scripts/install-deps.sh: Debian's etcd-server)")
    return EtcdCluster(root).start()
