"""`fastmesh controlplane check|serve`: in-process for check, a real process beside Envoy."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fastmesh.cli import main as fastmesh
from tests.support import EchoServer, free_port, run_proxy, wait_for_port

from .harness import ads_bootstrap, service, wait_until, workload, write_yaml


def test_analyze_reports_every_problem_at_once_and_exits_1_on_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_yaml(
        tmp_path / "mesh.yaml",
        service("a", 80),
        workload("a-1", "a", "v1", 8080),
        service("lonely", 81),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "a"},
            "spec": {
                "hosts": ["a", "ghost"],
                "http": [
                    {
                        "route": [{"destination": {"host": "a", "subset": "v9"}}],
                        "mirror": {"host": "shadow"},
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "a"},
            "spec": {"host": "a", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]},
        },
        *(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": {"name": name},
                "spec": {"mtls": {"mode": mode}},
            }
            for name, mode in (("default", "STRICT"), ("later", "DISABLE"))
        ),
    )
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 0}]}\n"
    )
    assert fastmesh(["analyze", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    vs, dr = "mesh.yaml: VirtualService default/a", "mesh.yaml: DestinationRule default/a"
    assert out == [
        "Error [IST0106] bad.yaml: Service default/b: spec.ports[0].port: expected an integer "
        "in [1, 65535], got 0",
        f"Error [IST0101] {vs}: spec.hosts[1]: unknown service ghost.default.svc.cluster.local",
        f"Error [IST0101] {vs}: spec.http[0].mirror.host: unknown service "
        "shadow.default.svc.cluster.local",
        f"Error [IST0101] {vs}: spec.http[0].route[0].destination.subset: no DestinationRule "
        "subset 'v9' for a.default.svc.cluster.local",
        f"Warning [FM0005] {dr}: spec.subsets[0].labels: subset 'v2' selects no workload of "
        "a.default.svc.cluster.local",
        "Warning [FM0006] mesh.yaml: PeerAuthentication default/later: spec: same scope as "
        "default, which applies (the first by name)",
        "Warning [FM0004] mesh.yaml: Service default/lonely: spec.selector: selects no "
        "WorkloadEntry (its clusters have no endpoints)",
        f"4 error(s), 3 warning(s) in {tmp_path}",
    ]
    # the control plane's own check is the same analysis
    assert fastmesh(["controlplane", "check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == out


def authz(name: str, action: str, spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name},
        "spec": {"action": action, **spec},
    }


def test_analyze_authorization_policies_and_service_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from_ = {"source": {"principals": ["cluster.local/ns/default/sa/a"]}}
    write_yaml(
        tmp_path / "mesh.yaml",
        service("a", 80),
        workload("a-1", "a", "v1", 8080),
        authz("ghosts", "ALLOW", {"selector": {"matchLabels": {"app": "ghost"}}}),
        authz(
            "allow-a",
            "ALLOW",
            {
                "selector": {"matchLabels": {"app": "a"}},
                "rules": [
                    {"from": [{"source": {"namespaces": ["prod", "default", "*-test"]}}]},
                    {"from": [from_], "to": [{"operation": {"methods": ["GET"]}}]},
                    {
                        "from": [
                            {
                                "source": {
                                    "principals": [
                                        "cluster.local/ns/default/sa/nobody",
                                        "cluster.local/ns/default/sa/*",
                                    ]
                                }
                            }
                        ]
                    },
                ],
            },
        ),
        authz(
            "deny-all-ns",
            "DENY",
            {"rules": [{"from": [from_], "to": [{"operation": {"methods": ["GET"]}}]}]},
        ),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "shadow"},
            "spec": {
                "hosts": ["a.default.svc.cluster.local", "*.example.com"],
                "ports": [{"number": 80, "name": "http"}],
            },
        },
    )
    assert fastmesh(["analyze", str(tmp_path)]) == 0
    policy = "mesh.yaml: AuthorizationPolicy default"
    assert capsys.readouterr().out.splitlines() == [
        f"Warning [FM0009] {policy}/allow-a: spec.rules[0].from[0].source.namespaces[0]: "
        "unknown namespace 'prod' (no Service, WorkloadEntry or ServiceEntry in it)",
        f"Warning [FM0008] {policy}/allow-a: spec.rules[1]: the same rule as DENY policy "
        "default/deny-all-ns spec.rules[0], which wins: the requests it allows are denied",
        f"Warning [FM0009] {policy}/allow-a: spec.rules[2].from[0].source.principals[0]: no "
        "WorkloadEntry of namespace 'default' has service account 'nobody'",
        f"Warning [IST0127] {policy}/ghosts: spec.selector.matchLabels: no matching workloads "
        "for this resource with the following labels: app=ghost",
        "Warning [FM0007] mesh.yaml: ServiceEntry default/shadow: spec.hosts[0]: "
        "a.default.svc.cluster.local is already Service default/a (mesh.yaml); ignored",
        "Info [FM0010] mesh.yaml: ServiceEntry default/shadow: spec.resolution: NONE is an "
        "ORIGINAL_DST cluster, which fastmesh sidecars refuse (NACK); Envoy sidecars take it",
        f"0 error(s), 5 warning(s), 1 info in {tmp_path}",
    ]


def test_analyze_a_clean_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_yaml(tmp_path / "ok.yaml", service("a", 80), workload("a-1", "a", "v1", 8080))
    assert fastmesh(["analyze", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"\u2714 No validation issues found when analyzing {tmp_path}.\n"
    )
    assert fastmesh(["analyze", str(tmp_path / "nope")]) == 2


def test_serve_reports_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = fastmesh(
            ["controlplane", "serve", "--config-dir", str(tmp_path), "--port", str(port)]
        )
    assert code == 1
    assert capsys.readouterr().err.startswith(f"fastmesh controlplane: 127.0.0.1:{port}: ")


@pytest.mark.envoy
def test_serve_drives_envoy_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    xds_port, port = free_port(), free_port()
    config_dir = tmp_path / "mesh"
    config_dir.mkdir()
    with EchoServer("reviews-v1") as upstream:
        write_yaml(
            config_dir / "mesh.yaml",
            service("reviews", port),
            workload("reviews-v1", "reviews", "v1", upstream.port),
        )
        log = (tmp_path / "cp.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fastmesh.controlplane",
                "serve",
                "--config-dir",
                str(config_dir),
                "--port",
                str(xds_port),
                "--poll",
                "0.05",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(xds_port, timeout=15)
            boot = ads_bootstrap(
                admin_port=free_port(),
                xds_port=xds_port,
                node_id="sidecar~127.0.0.1~client.default~default.svc.cluster.local",
            )
            # Envoy is /ready only once its first LDS and CDS (and their RDS/EDS) arrived
            with run_proxy(boot, binary="envoy", workdir=tmp_path), httpx.Client() as client:

                def routed() -> httpx.Response | None:
                    r = client.get(f"http://127.0.0.1:{port}/hello", headers={"host": "reviews"})
                    return r if r.status_code == 200 else None

                response = wait_until("a routed request", routed)
                assert response.headers["x-upstream-name"] == "reviews-v1"
                assert response.json()["path"] == "/hello"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    output = (tmp_path / "cp.log").read_text()
    assert "serving ADS on 127.0.0.1" in output
    assert "WARNING" not in output and "ERROR" not in output, output


def test_proxy_status_reports_an_unreachable_control_plane(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    assert fastmesh(["controlplane", "proxy-status", "--server", f"127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err.startswith(
        f"fastmesh controlplane proxy-status: 127.0.0.1:{port}: "
    )
