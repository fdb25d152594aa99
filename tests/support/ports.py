"""Free loopback ports for test servers and proxies, never handed out twice per session."""

from __future__ import annotations

import socket
import threading
import time

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1", *also: str) -> int:
    """A TCP port on `host` (and on each address in `also`) that is free now and not yet
    given to another caller.

    The kernel picks it (bind to port 0); there is a window before the caller binds
    it, so never hold on to a port number for long before using it. Pass every address
    the port will be bound on: sidecars bind 127.0.0.2 and up with SO_REUSEPORT, so a port
    free on 127.0.0.1 may be another test session's listener there, and the kernel would
    then spread connections over both.
    """
    with _lock:
        for _ in range(50):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out and all(_bindable(a, port) for a in also):
                _handed_out.add(port)
                return port
    raise RuntimeError("no fresh free port after 50 tries")


def _bindable(host: str, port: int) -> bool:
    """Whether `host:port` can be bound now (a plain bind: a SO_REUSEPORT listener there
    makes it fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, host: str = "127.0.0.1", *, timeout: float = 10.0) -> None:
    """Poll until something accepts TCP connections on `host:port`, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def port_refuses(port: int, host: str = "127.0.0.1") -> bool:
    """True when a TCP connect to `host:port` is refused (nothing listening)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
