"""`fastmesh-proxy` flags: Envoy's, with Envoy's meaning; `--mode validate` as Envoy prints it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fastmesh.proxy._server import exit_status
from fastmesh.proxy.cli import parse_args
from tests.support import require_binary, to_yaml

from ._topology import Ports, front_config


def test_args_split_at_double_dash() -> None:
    ns, app = parse_args(["-c", "x.yaml", "--concurrency", "2", "--", "app", "-c", "--x"])
    assert ns.config_path == Path("x.yaml")
    assert ns.concurrency == 2
    assert app == ["app", "-c", "--x"]


def test_envoy_compat_flags_are_accepted() -> None:
    ns, _ = parse_args(
        ["-c", "x.yaml", "--base-id", "7", "-l", "debug", "--drain-time-s", "3",
         "--disable-hot-restart", "--service-node", "n1", "--service-cluster", "c1"]
    )  # fmt: skip
    assert (ns.base_id, ns.log_level, ns.drain_time_s) == (7, "debug", 3.0)
    assert (ns.service_node, ns.service_cluster) == ("n1", "c1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "x", "--config-yaml", "{}"], "--config-yaml: inline YAML is not supported"),
        (["-c", "x", "--restart-epoch", "1"], "hot restart is not supported"),
        (["-c", "x", "--allow-unknown-static-fields"], "never ignores a field"),
        (["-c", "x", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--concurrency", "1"], "-c/--config-path is required"),
        (["-c", "x", "--"], "nothing after --"),
        (["-c", "x", "-l", "loud"], "argument -l/--log-level"),
        (["-c", "x", "--drain-time-s", "-1"], "--drain-time-s must be a number of seconds"),
        (["-c", "x", "--drain-time-s", "nan"], "--drain-time-s must be a number of seconds"),
    ],
)
def test_bad_flags_are_clear_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 1
    assert message in capsys.readouterr().err


def test_exit_status_of_signalled_child_is_128_plus_n() -> None:
    assert exit_status(0) == 0
    assert exit_status(3) == 3
    assert exit_status(-15) == 143


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    exe = require_binary("fastmesh-proxy")
    return subprocess.run(
        [exe, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
    )


def test_validate_good_config(tmp_path: Path) -> None:
    cfg = tmp_path / "envoy.yaml"
    cfg.write_text(to_yaml(front_config(Ports(10000, 9901), 8080)))
    result = _validate(cfg)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"configuration '{cfg}' OK\n"


def test_validate_bad_config_names_every_field(tmp_path: Path) -> None:
    config = front_config(Ports(10000, 9901), 8080)
    config["static_resources"]["clusters"][0]["type"] = "EDS_PLEASE"
    config["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytez"] = 1
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(to_yaml(config))
    result = _validate(cfg)
    assert result.returncode == 1
    assert "OK" not in result.stdout
    assert f"{cfg}: static_resources.clusters[0].type" in result.stderr
    assert "static_resources.listeners[0].per_connection_buffer_limit_bytez" in result.stderr


def test_serve_with_bad_config_exits_1_naming_the_field(tmp_path: Path) -> None:
    config = front_config(Ports(10000, 9901), 8080)
    config["static_resources"]["clusters"][0]["lb_policy"] = "FASTEST"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(to_yaml(config))
    exe = require_binary("fastmesh-proxy")
    result = subprocess.run([exe, "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "static_resources.clusters[0].lb_policy" in result.stderr
    assert "[critical][config]" in result.stderr


def test_busy_admin_port_is_a_clear_startup_error(tmp_path: Path) -> None:
    import socket

    from tests.support import free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = Ports(free_port(), busy.getsockname()[1])
        cfg = tmp_path / "envoy.yaml"
        cfg.write_text(to_yaml(front_config(ports, 8080)))
        exe = require_binary("fastmesh-proxy")
        result = subprocess.run([exe, "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on admin address 127.0.0.1:{ports.admin}" in result.stderr
