"""Run nginx as an upstream with every path (conf, pid, logs, temp) in a scratch dir."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import pytest

from .ports import free_port, wait_for_port

_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "nginx ok\\n"; }}
        location /small {{ return 200 "hello"; }}
{extra}
    }}
}}
"""


class NginxServer:
    """with NginxServer() as nginx: ... nginx.port ... (`extra` goes inside `server {}`)."""

    def __init__(self, extra: str = "") -> None:
        self.extra = extra
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NginxServer:
        exe = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if exe is None:
            pytest.skip(reason="nginx is not installed")
        self._dir = tempfile.TemporaryDirectory(prefix="fastmesh-nginx-")
        d = Path(self._dir.name)
        d.chmod(0o755)
        self.port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(_CONF.format(d=d, port=self.port, extra=self.extra))
        self._proc = subprocess.Popen(
            [exe, "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self._proc.kill()
            _, err = self._proc.communicate()
            raise RuntimeError(f"nginx did not start: {err.decode(errors='replace')}") from None
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            assert self._proc.stderr is not None
            self._proc.stderr.close()
        if self._dir is not None:
            self._dir.cleanup()
