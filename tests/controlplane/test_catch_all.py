"""A VirtualService's http routes stop at the first catch-all, as Istio's
`BuildHTTPRoutesForVirtualService` (route.go) stops: a route without matches, or a match
whose Envoy route takes every request (`IsCatchAllRoute`), hides everything after it."""

from __future__ import annotations

from typing import Any

from fastmesh.controlplane import ROUTE, ProxyInfo, load_documents, translate, translate_snapshot
from fastmesh.controlplane._analyze import analyze

from .test_load import BOOKINFO

SHOP = ProxyInfo("sidecar~10.0.0.9~productpage.shop~shop.svc.cluster.local", "shop")
V1 = ProxyInfo("v1", "shop", workload="reviews-v1")


def vs_config(routes: str) -> Any:
    """Bookinfo's service, workload and rule, with VirtualService `reviews` (in `vs.yaml`)
    whose spec ends with `routes` (its `http:` or `tcp:` list)."""
    vs = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
{routes}"""
    service, workload, _, rule = BOOKINFO.split("---")
    config, problems = load_documents(
        [("b.yaml", f"{service}---{workload}---{rule}"), ("vs.yaml", vs)]
    )
    assert problems == []
    return config


def _config(http: str) -> Any:
    """VirtualService `reviews` routing `http`."""
    return vs_config(f"  http:\n{http}")


def _routes(config: Any, proxy: ProxyInfo = SHOP, port: int = 9080) -> list[str]:
    rcs = {rc["name"]: rc for rc in translate(config, proxy).documents[ROUTE]}
    [vhost] = rcs[str(port)]["virtual_hosts"]
    return [r["name"] for r in vhost["routes"]]


def test_nothing_after_a_route_without_matches() -> None:
    config = _config("""
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /b}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v2}}]
""")
    assert _routes(config) == ["reviews.0.0", "reviews.1.0"]
    translate_snapshot(config, SHOP)  # valid Envoy protobuf


def test_a_catch_all_match_ends_its_route_and_the_list() -> None:
    """Prefix `/` (or no uri, or regex `.*`) with no other condition matches every request:
    the route's later matches and every later route are dropped."""
    for catch_all in ("{uri: {prefix: /}}", "{uri: {regex: '.*'}}", "{}"):
        config = _config(f"""
  - name: first
    match: [{{uri: {{exact: /x}}}}, {catch_all}, {{uri: {{prefix: /late}}}}]
    route: [{{destination: {{host: reviews, subset: v1}}}}]
  - route: [{{destination: {{host: reviews}}}}]
""")
        assert _routes(config) == ["first.0", "first.1"], catch_all


def test_a_match_with_any_other_condition_is_no_catch_all() -> None:
    conditions = (
        "{uri: {prefix: /}, headers: {x-user: {exact: a}}}",
        "{uri: {prefix: /}, method: {exact: GET}}",
        "{uri: {prefix: /}, queryParams: {q: {exact: '1'}}}",
        "{uri: {prefix: /a}}",
        "{uri: {regex: '/.*'}}",
        "{uri: {exact: /}}",
    )
    for m in conditions:
        config = _config(f"""
  - match: [{m}]
    route: [{{destination: {{host: reviews, subset: v1}}}}]
  - route: [{{destination: {{host: reviews}}}}]
""")
        assert _routes(config) == ["reviews.0.0", "reviews.1.0"], m


def test_a_catch_all_hides_routes_only_where_it_applies() -> None:
    """`port` and the source fields decide which route configs have a match; a catch-all
    match a route config does not have hides nothing there (Istio: `translateRoute` returns
    nil for it, so the loop goes on)."""
    config = _config("""
  - match: [{port: 9090}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{sourceLabels: {version: v1}, uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
""")
    assert _routes(config, SHOP, 9080) == ["reviews.2.0", "reviews.3.0"]
    assert _routes(config, SHOP, 9090) == ["reviews.0.0"]
    assert _routes(config, V1, 9080) == ["reviews.1.0"]
    assert _routes(config, V1, 9090) == ["reviews.0.0"]
    translate_snapshot(config, V1)  # valid Envoy protobuf


def test_a_hidden_routes_dangling_destination_is_still_a_warning() -> None:
    config = _config("""
  - route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: gone}}]
""")
    result = translate(config, SHOP)
    assert [str(w) for w in result.warnings] == [
        "vs.yaml: VirtualService shop/reviews: spec.http[1].route[0].destination.host: "
        "unknown service gone.shop.svc.cluster.local"
    ]
    assert _routes(config) == ["reviews.0.0"]


def analyze_findings(config: Any, *codes: str) -> list[str]:
    return [f.render() for f in analyze(config, []) if f.code in codes]


WHERE = "vs.yaml: VirtualService shop/reviews: spec.http"


def test_analyze_reports_unreachable_rules_as_istio_does() -> None:
    """IST0130 as Istio's `analyzeUnreachableHTTPRules`: rules after a rule without
    matches, a second rule without matches, a rule whose every match came before."""
    config = _config("""
  - match: [{uri: {prefix: /a}}, {uri: {prefix: /b}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: dup
    match: [{uri: {prefix: /b}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /b}}, {uri: {prefix: /c}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /d}}, {uri: {prefix: /e}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    assert analyze_findings(config, "IST0130", "FM0014") == [
        f'Warning [IST0130] {WHERE}[1]: rule "dup" not used (all matches used by prior rules)',
        f"Warning [IST0130] {WHERE}[4]: rule #4 not used (route without matches defined before)",
        f"Warning [IST0130] {WHERE}[5]: rule #5 not used (only the last rule can have no matches)",
    ]


def test_analyze_reports_rules_after_a_catch_all_match_fm0014() -> None:
    """Istio's analysis does not see `uri: {prefix: /}` as matching everything; translation
    drops what follows all the same, so fastmesh reports it. A catch-all only some route
    configs have (`port`, source fields) hides nothing everywhere: not reported."""
    config = _config("""
  - match: [{port: 9090}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: all
    match: [{uri: {exact: /x}}, {uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
""")
    hidden = 'not used (rule "all" match #1 takes every request before it)'
    assert analyze_findings(config, "IST0130", "FM0014") == [
        f"Warning [FM0014] {WHERE}[2]: rule #2 {hidden}",
        f"Warning [FM0014] {WHERE}[3]: rule #3 {hidden}",
    ]
    assert _routes(config) == ["all.0", "all.1"]
