"""Shared test helpers: ports, proxies (fastmesh-proxy or Envoy), upstream servers, and
Envoy config builders. Import from here: `from tests.support import run_proxy, EchoServer`."""

from .echo import EchoServer, EchoState, SeenRequest, pattern_bytes, serve_echo
from .envoy_config import (
    bootstrap,
    cluster,
    header_exact,
    header_present,
    header_values,
    http_listener,
    path,
    prefix,
    regex,
    route,
    socket_address,
    tcp_listener,
    to_yaml,
    virtual_host,
)
from .flaky import FlakyServer, Misbehaviour
from .grpc_echo import GrpcEchoServer, bidi_call, unary_call
from .nginx import NginxServer
from .ports import free_port, port_refuses, wait_for_port
from .proxy import BINARY_PARAMS, ProxyError, ProxyProcess, proxy_command, require_binary, run_proxy
from .rawhttp import RawResponse, connect, is_closed, read_response, read_until_close
from .tcp import TcpEchoServer

__all__ = [
    "BINARY_PARAMS",
    "EchoServer",
    "EchoState",
    "FlakyServer",
    "GrpcEchoServer",
    "Misbehaviour",
    "NginxServer",
    "ProxyError",
    "ProxyProcess",
    "RawResponse",
    "SeenRequest",
    "TcpEchoServer",
    "bidi_call",
    "bootstrap",
    "cluster",
    "connect",
    "free_port",
    "header_exact",
    "header_present",
    "header_values",
    "http_listener",
    "is_closed",
    "path",
    "pattern_bytes",
    "port_refuses",
    "prefix",
    "proxy_command",
    "read_response",
    "read_until_close",
    "regex",
    "require_binary",
    "route",
    "run_proxy",
    "serve_echo",
    "socket_address",
    "tcp_listener",
    "to_yaml",
    "unary_call",
    "virtual_host",
    "wait_for_port",
]
