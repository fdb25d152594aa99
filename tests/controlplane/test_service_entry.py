"""ServiceEntry: validation as Istio's, and its hosts translated as services (EDS, DNS or
original-destination clusters by resolution; routes and listeners; mTLS only inside the
mesh); from files and from etcd keys alike."""

from __future__ import annotations

from typing import Any

from fastmesh.controlplane import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyInfo, translate
from fastmesh.controlplane._etcd_keys import load_entries
from fastmesh.controlplane._load import load_documents
from fastmesh.controlplane._translate_inbound import translate_inbound

PROXY = ProxyInfo("sidecar~10.0.0.9~client.default~default.svc.cluster.local")

ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: default}
spec:
  hosts: [payments.example.com]
  addresses: [240.0.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.1.0.1, ports: {http: 9001}, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com, api2.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: one, namespace: default}
spec:
  hosts: [db.example.com]
  resolution: DNS_ROUND_ROBIN
  ports: [{number: 5432, name: pg, protocol: TCP, targetPort: 6432}]
  endpoints: [{address: db-primary.example.com}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anything, namespace: default}
spec:
  hosts: ["*.wild.example.com"]
  ports: [{number: 8443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: default}
spec:
  hosts: [vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
  ports: [{number: 7070, name: http-vm, targetPort: 7071}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 10.2.0.1, labels: {app: vm}, serviceAccount: vm}
"""


def translated(*extra: str, ca: bool = True) -> tuple[dict[str, list[Any]], list[str]]:
    config, problems = load_documents([("se.yaml", ENTRIES), *(("x.yaml", e) for e in extra)])
    assert problems == []
    result = translate(config, PROXY, "cluster.local" if ca else None)
    return result.documents, [str(w) for w in result.warnings]


def by_name(docs: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {d[key]: d for d in docs}


def addresses(assignment: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [
        (
            e["endpoint"]["address"]["socket_address"]["address"],
            e["endpoint"]["address"]["socket_address"]["port_value"],
            e.get("load_balancing_weight", 1),
        )
        for group in assignment["endpoints"]
        for e in group["lb_endpoints"]
    ]


def test_each_resolution_makes_istios_cluster() -> None:
    docs, warnings = translated()
    assert warnings == []
    clusters = by_name(docs[CLUSTER])
    loads = by_name(docs[ENDPOINT], "cluster_name")
    static = "outbound|8080||payments.example.com"
    assert clusters[static]["type"] == "EDS"
    # an endpoint's own port by name, else the entry's port (targetPort unset)
    assert addresses(loads[static]) == [("10.1.0.1", 9001, 1), ("10.1.0.2", 8080, 3)]
    for host in ("api.example.com", "api2.example.com"):
        dns = clusters[f"outbound|80||{host}"]
        assert dns["type"] == "STRICT_DNS" and dns["dns_lookup_family"] == "V4_ONLY"
        # no endpoints: the host itself is resolved (Istio's rule)
        assert addresses(dns["load_assignment"]) == [(host, 80, 1)]
        assert f"outbound|80||{host}" not in loads
    logical = clusters["outbound|5432||db.example.com"]
    assert logical["type"] == "LOGICAL_DNS"
    assert addresses(logical["load_assignment"]) == [("db-primary.example.com", 6432, 1)]
    subsets = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec: {host: db.example.com, subsets: [{name: none, labels: {role: replica}}]}
"""
    docs, _ = translated(subsets)
    empty = by_name(docs[CLUSTER])["outbound|5432|none|db.example.com"]
    # LOGICAL_DNS needs exactly one endpoint: a subset selecting none is empty STRICT_DNS
    assert (empty["type"], addresses(empty["load_assignment"])) == ("STRICT_DNS", [])
    original = clusters["outbound|8443||*.wild.example.com"]
    assert (original["type"], original["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED")
    assert "load_assignment" not in original
    # a workloadSelector selects WorkloadEntries of the entry's namespace, like a Service
    assert addresses(loads["outbound|7070||vm.internal"]) == [("10.2.0.1", 7071, 1)]


def test_mtls_only_to_mesh_internal_workloads_with_sidecars() -> None:
    docs, _ = translated()
    clusters = by_name(docs[CLUSTER])
    # the WorkloadEntry a MESH_INTERNAL entry selects has a sidecar: auto mTLS, its identity
    vm = clusters["outbound|7070||vm.internal"]["transport_socket"]["typed_config"]
    sans = vm["common_tls_context"]["combined_validation_context"]["default_validation_context"]
    assert sans["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/vm"}}
    ]
    assert vm["sni"] == "outbound_.7070_._.vm.internal"
    # inline endpoints without `security.istio.io/tlsMode: istio`, and everything external
    for name in ("outbound|8080||payments.example.com", "outbound|80||api.example.com"):
        assert "transport_socket" not in clusters[name]
    # the same endpoints labelled as having a sidecar: mTLS inside the mesh, never outside
    labelled = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sidecars, namespace: default}
spec:
  hosts: [in.example.com, out.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: http}]
  endpoints: [{address: 10.3.0.1, labels: {security.istio.io/tlsMode: istio}}]
"""
    docs, _ = translated(labelled)
    assert "transport_socket" in by_name(docs[CLUSTER])["outbound|9000||in.example.com"]
    docs, _ = translated(labelled.replace("MESH_INTERNAL", "MESH_EXTERNAL"))
    assert "transport_socket" not in by_name(docs[CLUSTER])["outbound|9000||in.example.com"]
    # a DestinationRule asking for ISTIO_MUTUAL still gets it, external or not (Istio's)
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec: {host: api.example.com, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
"""
    docs, _ = translated(rule)
    assert "transport_socket" in by_name(docs[CLUSTER])["outbound|80||api.example.com"]


def test_hosts_get_routes_listeners_and_virtual_service_destinations() -> None:
    routing = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments, namespace: default}
spec:
  host: payments.example.com
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments, namespace: default}
spec:
  hosts: [payments.example.com]
  http: [{route: [{destination: {host: payments.example.com, subset: v2}}]}]
"""
    docs, warnings = translated(routing)
    assert warnings == []
    assert addresses(
        by_name(docs[ENDPOINT], "cluster_name")["outbound|8080|v2|payments.example.com"]
    ) == [("10.1.0.2", 8080, 3)]
    routes = by_name(docs[ROUTE])
    [vhost] = routes["8080"]["virtual_hosts"]
    # the host as written and the entry's addresses, each with and without the port
    assert vhost["domains"] == [
        "payments.example.com",
        "payments.example.com:8080",
        "240.0.0.1",
        "240.0.0.1:8080",
    ]
    assert vhost["routes"][0]["route"]["cluster"] == "outbound|8080|v2|payments.example.com"
    listeners = by_name(docs[LISTENER])
    assert {"127.0.0.1_8080", "127.0.0.1_80", "127.0.0.1_5432", "127.0.0.1_7070"} <= set(listeners)
    tcp = listeners["127.0.0.1_5432"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert tcp["cluster"] == "outbound|5432||db.example.com"


def test_a_host_of_a_service_or_an_earlier_entry_is_kept_by_it() -> None:
    clash = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local, api.example.com]
  resolution: DNS
  ports: [{number: 9080, name: http}]
"""
    docs, warnings = translated(clash)
    assert warnings == [
        "x.yaml: ServiceEntry default/shadow: spec.hosts[0]: reviews.default.svc.cluster.local "
        "is already Service default/reviews (x.yaml); ignored",
        "x.yaml: ServiceEntry default/shadow: spec.hosts[1]: api.example.com is already "
        "ServiceEntry default/api (se.yaml); ignored",
    ]
    clusters = by_name(docs[CLUSTER])
    assert clusters["outbound|9080||reviews.default.svc.cluster.local"]["type"] == "EDS"
    assert "outbound|9080||api.example.com" not in clusters


def problems_of(spec: str) -> list[str]:
    text = f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e}}\n{spec}"
    config, problems = load_documents([("e.yaml", text)])
    assert config.service_entries == ()
    return [str(p).removeprefix("e.yaml: ServiceEntry default/e: ") for p in problems]


def test_validation_names_file_resource_and_field() -> None:
    assert problems_of("spec: {ports: [{number: 80, name: http}]}") == ["spec.hosts: is required"]
    assert problems_of(
        """spec:
  hosts: ["*", "*.example.com", "a b", ok.example.com, ok.example.com]
  addresses: [10.0.0.0/8, nope]
  resolution: DNS
  location: SOMEWHERE
  subjectAltNames: [x]
  exportTo: ["."]
  ports:
  - {number: 80, name: HTTP, protocol: FOO}
  - {number: 80, name: http}
  - {name: web}
  endpoints:
  - {address: "*.bad", ports: {nope: 1}}
"""
    ) == [
        "spec.subjectAltNames: unsupported field (supported: addresses, endpoints, exportTo, "
        "hosts, location, ports, resolution, workloadSelector)",
        "spec.location: expected one of MESH_EXTERNAL, MESH_INTERNAL, got 'SOMEWHERE'",
        "spec.hosts[0]: invalid host '*' (a DNS name, *.suffix or an IP address)",
        "spec.hosts[1]: wildcard host '*.example.com' needs resolution NONE",
        "spec.hosts[2]: invalid host 'a b' (a DNS name, *.suffix or an IP address)",
        "spec.hosts[4]: duplicate host 'ok.example.com'",
        "spec.ports[0].name: expected a DNS-1123 label, got 'HTTP'",
        "spec.ports[0].protocol: expected one of HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, MONGO, "
        "got 'FOO'",
        "spec.ports[1].number: duplicate port 80",
        "spec.ports[2].number: is required",
        "spec.endpoints[0].address: expected a DNS name or an IP address, got '*.bad'",
        "spec.endpoints[0].ports.nope: names no port of spec.ports",
        "spec.exportTo[0]: only '*' (all namespaces) is supported: '.'",
        "spec.addresses[0]: CIDR addresses need resolution NONE or STATIC (as in Istio)",
        "spec.addresses[1]: expected an IP address or CIDR, got 'nope'",
    ]
    ports = "  ports: [{number: 80, name: http}]\n"
    assert problems_of(f"spec:\n  hosts: [a.example.com]\n  resolution: STATIC\n{ports}") == [
        "spec.resolution: STATIC needs endpoints or a workloadSelector"
    ]
    assert problems_of(
        f"spec:\n  hosts: [a.example.com]\n  resolution: STATIC\n{ports}"
        "  endpoints: [{address: db.example.com}]\n"
        "  workloadSelector: {labels: {app: a}}\n"
    ) == [
        "spec.endpoints[0].address: resolution STATIC needs an IP address, got 'db.example.com'",
        "spec.workloadSelector: set either endpoints or workloadSelector, not both",
        "spec.workloadSelector: applies to MESH_INTERNAL entries only (as in Istio)",
    ]
    assert problems_of(
        f"spec:\n  hosts: [a.example.com]\n{ports}  endpoints: [{{address: 10.0.0.1}}]\n"
    ) == ["spec.endpoints: resolution NONE takes no endpoints (as in Istio)"]
    assert problems_of(
        f"spec:\n  hosts: [a.example.com]\n  resolution: DNS_ROUND_ROBIN\n{ports}"
        "  endpoints: [{address: a.example.com}, {address: b.example.com}]\n"
    ) == ["spec.endpoints: resolution DNS_ROUND_ROBIN takes at most one endpoint"]
    # an IP literal host with DNS resolution is fine (it resolves to itself)
    config, problems = load_documents(
        [
            (
                "e.yaml",
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: e}\n"
                f"spec:\n  hosts: [10.9.9.9]\n  resolution: DNS\n{ports}",
            )
        ]
    )
    assert problems == [] and config.service_entries[0].hosts == ("10.9.9.9",)


def test_etcd_keys_take_a_service_entry() -> None:
    spec = "hosts: [api.example.com]\nresolution: DNS\nports: [{number: 443, name: tls}]\n"
    config, problems = load_entries(
        [
            ("/fastmesh/config/ServiceEntry/default/api", spec),
            ("/fastmesh/config/ServiceEntry/other/api", "kind: ServiceEntry\nspec: {hosts: []}\n"),
        ]
    )
    [only] = config.service_entries
    assert (only.namespace, only.name, only.hosts) == ("default", "api", ("api.example.com",))
    assert [str(p) for p in problems] == [
        "/fastmesh/config/ServiceEntry/other/api: ServiceEntry other/api: spec.hosts: needs at "
        "least one host",
        "/fastmesh/config/ServiceEntry/other/api: ServiceEntry other/api: spec.ports: is required",
    ]


def test_workloads_a_mesh_internal_entry_selects_get_its_inbound_ports() -> None:
    config, _ = load_documents([("se.yaml", ENTRIES)])
    vm = ProxyInfo("sidecar~10.2.0.1~vm-1.default~default.svc.cluster.local", workload="vm-1")
    listeners, clusters, warnings = translate_inbound(config, vm, mtls=True)
    assert warnings == []
    assert [x["name"] for x in listeners] == ["inbound_10.2.0.1_7071"]
    assert [c["name"] for c in clusters] == ["inbound|7071||"]
