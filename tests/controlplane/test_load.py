"""Loading the YAML directory: services, workloads, Istio resources, and precise problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastmesh.controlplane import load_directory, load_documents
from fastmesh.controlplane._model import LoadBalancer, Protocol, StringMatch

BOOKINFO = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 8080}
  - {name: grpc-api, port: 9090}
  - {name: db, port: 5432}
  - {name: web, port: 8000, appProtocol: http2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
  ports: {http: 18080}
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: {end-user: {exact: jason}}
      uri: {prefix: /api}
    - method: {exact: POST}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 250ms, retryOn: "5xx,503"}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
"""


def test_a_whole_bookinfo_style_file_loads() -> None:
    config, problems = load_documents([("bookinfo.yaml", BOOKINFO)])
    assert problems == []
    [svc] = config.services
    assert svc.hostname == "reviews.shop.svc.cluster.local"
    assert [(p.number, p.protocol, p.target_port) for p in svc.ports] == [
        (9080, Protocol.HTTP, 8080),
        (9090, Protocol.GRPC, 9090),
        (5432, Protocol.TCP, 5432),
        (8000, Protocol.HTTP2, 8000),
    ]
    [w] = config.workloads
    assert (w.address, w.ports, w.service_account, w.labels["version"]) == (
        "10.0.0.1",
        {"http": 18080},
        "bookinfo-reviews",
        "v1",
    )
    [vs] = config.virtual_services
    jason, split = vs.http
    assert jason.matches[0].headers == {"end-user": StringMatch("exact", "jason")}
    assert jason.matches[0].uri == StringMatch("prefix", "/api")
    assert jason.matches[1].method == StringMatch("exact", "POST")
    assert jason.timeout == 1.5 and jason.retries is not None
    assert (jason.retries.attempts, jason.retries.per_try_timeout) == (3, 0.25)
    assert [(d.destination.subset, d.weight) for d in split.route] == [("v1", 90), ("v2", 10)]
    [dr] = config.destination_rules
    assert dr.policy is not None and dr.policy.load_balancer == LoadBalancer("RANDOM")
    v2_policy = dr.subsets[1].policy
    assert v2_policy is not None and v2_policy.load_balancer == LoadBalancer("ROUND_ROBIN")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r, namespace: shop}\nspec:\n  hosts: [r]\n  http:\n"
            "  - route:\n    - {destination: {host: r}, weight: 90}\n"
            "    - {destination: {host: r, subset: v2}, weight: 20}\n",
            "bad.yaml: VirtualService shop/r: spec.http[0].route: destination weights must sum "
            "to 100",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
            "  - match: [{uri: {prefix: /a, exact: /b}}]\n    route: [{destination: {host: r}}]\n",
            "bad.yaml: VirtualService default/r: spec.http[0].match[0].uri: expected exactly one "
            "of exact, prefix, regex",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
            "  - directResponse: {status: 503}\n    route: [{destination: {host: r}}]\n",
            "bad.yaml: VirtualService default/r: spec.http[0].directResponse: unsupported field",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
            "  - route: [{destination: {host: r}}]\n    timeout: soon\n",
            "bad.yaml: VirtualService default/r: spec.http[0].timeout: expected a duration",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            "metadata: {name: r}\nspec:\n  host: r\n"
            "  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n",
            "bad.yaml: DestinationRule default/r: spec.trafficPolicy.loadBalancer.simple: "
            "expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n"
            "  ports: [{name: http, port: 99999}]\n",
            "bad.yaml: Service default/s: spec.ports[0].port: expected an integer in [1, 65535]",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\n"
            "spec: {labels: {app: s}}\n",
            "bad.yaml: WorkloadEntry default/w: spec.address: is required",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n",
            "bad.yaml: Gateway default/g: kind: unsupported networking.istio.io/v1 Gateway",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
            "  - fault: {abort: {httpStatus: 503, percentage: {value: 120}}}\n"
            "    route: [{destination: {host: r}}]\n",
            "bad.yaml: VirtualService default/r: spec.http[0].fault.abort.percentage.value: "
            "expected a number in [0, 100], got 120",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
            "  - redirect: {uri: /new, redirectCode: 304}\n",
            "bad.yaml: VirtualService default/r: spec.http[0].redirect.redirectCode: expected "
            "one of 301, 302, 303, 307, 308",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n"
            "  - redirect: {uri: /new}\n    route: [{destination: {host: r}}]\n",
            "bad.yaml: VirtualService default/r: spec.http[0].redirect: a route has either "
            "redirect or route, not both",
        ),
        ("kind: Service\nmetadata: {name: s}\n", "bad.yaml: document 0: apiVersion: is required"),
        ("a: [unclosed\n", "bad.yaml: invalid YAML"),
    ],
)
def test_problems_name_the_file_the_resource_and_the_field(text: str, expected: str) -> None:
    config, problems = load_documents([("bad.yaml", text)])
    assert config.virtual_services == () and config.services == ()
    assert config.workloads == () and config.destination_rules == ()
    assert any(str(p).startswith(expected) for p in problems), [str(p) for p in problems]


TO_R = "  route: [{destination: {host: r}}]\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("- mirrorPercentage: {value: 5}\n" + TO_R, "http[0].mirrorPercentage: needs mirror"),
        ("- mirror: {subset: v1}\n" + TO_R, "http[0].mirror.host: is required"),
        (
            "- mirror: {host: m}\n  redirect: {uri: /x}\n",
            "http[0].mirror: a redirect is answered here; there is nothing to mirror",
        ),
        (
            "- mirror: {host: m}\n  mirrorPercentage: {value: 150}\n" + TO_R,
            "http[0].mirrorPercentage.value: expected a number in [0, 100], got 150",
        ),
        (
            "- mirrors: [{destination: {host: m}, percent: 5}]\n" + TO_R,
            "http[0].mirrors[0].percent: unsupported field",
        ),
        (
            "- corsPolicy: {allowOrigins: [{exact: a, prefix: b}]}\n" + TO_R,
            "http[0].corsPolicy.allowOrigins[0]: expected exactly one of exact, prefix, regex",
        ),
        (
            "- corsPolicy: {allowCredentials: 'yes'}\n" + TO_R,
            "http[0].corsPolicy.allowCredentials: expected true or false, got 'yes'",
        ),
        ("- corsPolicy: {maxAge: 1day}\n" + TO_R, "http[0].corsPolicy.maxAge: expected a duration"),
        (
            "- corsPolicy: {unmatchedPreflights: DROP}\n" + TO_R,
            "http[0].corsPolicy.unmatchedPreflights: expected one of UNSPECIFIED, FORWARD, "
            "IGNORE, got 'DROP'",
        ),
        (
            "- corsPolicy: {allowOrigin: [a]}\n" + TO_R,
            "http[0].corsPolicy.allowOrigin: unsupported field",
        ),
    ],
)
def test_mirror_and_cors_problems(body: str, expected: str) -> None:
    text = _VS_R + "  http:\n" + "".join(f"  {line}\n" for line in body.splitlines())
    _assert_only_problem(text, f"spec.{expected}")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "- route: [{destination: {host: a}, weight: 70}, {destination: {host: b}, weight: 20}]",
            "tcp[0].route: destination weights must sum to 100",
        ),
        (
            "- {match: [{sourceLabels: {app: [x]}}], route: [{destination: {host: a}}]}",
            "tcp[0].match[0].sourceLabels.app: expected a string label value, got ['x']",
        ),
        (
            "- {match: [{destinationSubnets: [nope]}], route: [{destination: {host: a}}]}",
            "tcp[0].match[0].destinationSubnets[0]: expected an IP address or CIDR, got 'nope'",
        ),
        (
            "- {match: [{port: 0}], route: [{destination: {host: a}}]}",
            "tcp[0].match[0].port: expected an integer in [1, 65535], got 0",
        ),
        ("- match: [{port: 5432}]", "tcp[0].route: is required"),
        ("- {route: [], match: []}", "tcp[0].route: needs at least one destination"),
    ],
)
def test_tcp_route_problems(body: str, expected: str) -> None:
    _assert_only_problem(_VS_R + f"  tcp:\n  {body}\n", f"spec.{expected}")


_VS_R = (
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
    "metadata: {name: r}\nspec:\n  hosts: [r]\n"
)


def _assert_only_problem(text: str, expected: str) -> None:
    """`text` is refused with one problem, naming the file, the resource and the field."""
    config, problems = load_documents([("bad.yaml", text)])
    assert config.virtual_services == ()
    assert [str(p) for p in problems] == [str(problems[0])]
    assert str(problems[0]).startswith(f"bad.yaml: VirtualService default/r: {expected}")


def test_a_bad_resource_leaves_the_good_ones_and_reports_all(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(BOOKINFO)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.yml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 0}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: 3, selectr: {}}\n"
    )
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    config, problems = load_directory(tmp_path)
    assert [s.name for s in config.services] == ["reviews"]
    assert sorted(str(p) for p in problems) == [
        "sub/bad.yml: Service default/a: spec.ports[0].port: expected an integer in [1, 65535], "
        "got 0",
        "sub/bad.yml: Service default/b: spec.ports: expected a list, got int",
        "sub/bad.yml: Service default/b: spec.selectr: unsupported field (supported: clusterIP, "
        "ports, selector, type)",
    ]


def test_duplicate_resources_are_reported_with_both_files() -> None:
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"
    config, problems = load_documents([("one.yaml", svc), ("two.yaml", svc)])
    assert len(config.services) == 1
    assert [str(p) for p in problems] == [
        "two.yaml: Service default/a: metadata.name: also defined in one.yaml"
    ]
