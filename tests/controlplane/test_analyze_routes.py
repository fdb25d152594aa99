"""`fastmesh analyze` on a VirtualService's rule list, as Istio's validation decides it
(`analyzeUnreachableHTTPRules`, `analyzeUnreachableTCPRules`): IST0130 for a rule no
request reaches, IST0131 for a match an earlier one repeats or (http) covers by prefix."""

from __future__ import annotations

from .test_catch_all import analyze_findings, vs_config

VS = "vs.yaml: VirtualService shop/reviews: spec"
CODES = ("IST0130", "IST0131")


def _found(routes: str) -> list[str]:
    return analyze_findings(vs_config(routes), *CODES)


def test_tcp_rules_no_connection_reaches_are_ist0130() -> None:
    assert _found("""
  tcp:
  - match: [{port: 5432}, {sourceNamespace: ops}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{sourceNamespace: ops}, {port: 5432}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{port: 5432}, {port: 5433}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
  - match: [{port: 5434}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
""") == [
        f"Warning [IST0130] {VS}.tcp[1]: rule #1 not used (all matches used by prior rules)",
        f"Warning [IST0130] {VS}.tcp[4]: rule #4 not used (route without matches defined before)",
        f"Warning [IST0130] {VS}.tcp[5]: rule #5 not used (only the last rule can have no matches)",
        f"Info [IST0131] {VS}.tcp[1].match[0]: rule #1 match #0 is not used "
        "(duplicate/overlapping match in rule #0)",
        f"Info [IST0131] {VS}.tcp[1].match[1]: rule #1 match #1 is not used "
        "(duplicate/overlapping match in rule #0)",
        f"Info [IST0131] {VS}.tcp[2].match[0]: rule #2 match #0 is not used "
        "(duplicate/overlapping match in rule #0)",
    ]


def test_tcp_matches_differing_in_any_field_are_not_duplicates() -> None:
    """Istio compares tcp matches whole: no prefix or coverage check as for http."""
    assert (
        _found("""
  tcp:
  - match: [{port: 5432, sourceLabels: {version: v1}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{port: 5432, sourceLabels: {version: v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{port: 5432}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{port: 5432, destinationSubnets: [10.0.0.0/8]}, {port: 5432, gateways: [mesh]}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
""")
        == []
    )


def test_http_repeated_matches_are_ist0131_named_as_istio_names_them() -> None:
    """A match is repeated whatever its name (Istio compares matches without it), also within
    its own rule; the rule is unused (IST0130) only when every match of it is repeated."""
    assert _found("""
  http:
  - name: api
    match: [{uri: {exact: /a}, headers: {x-user: {exact: jo}}}, {uri: {exact: /b}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match:
    - {name: again, headers: {x-user: {exact: jo}}, uri: {exact: /a}}
    - {uri: {exact: /c}}
    - {uri: {exact: /c}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: copy
    match: [{uri: {exact: /b}}, {uri: {exact: /c}}]
    route: [{destination: {host: reviews, subset: v2}}]
""") == [
        f'Warning [IST0130] {VS}.http[2]: rule "copy" not used (all matches used by prior rules)',
        f'Info [IST0131] {VS}.http[1].match[0]: rule #1 match "again" is not used '
        '(duplicate/overlapping match in rule "api")',
        f"Info [IST0131] {VS}.http[1].match[2]: rule #1 match #2 is not used "
        "(duplicate/overlapping match in rule #1)",
        f'Info [IST0131] {VS}.http[2].match[0]: rule "copy" match #0 is not used '
        '(duplicate/overlapping match in rule "api")',
        f'Info [IST0131] {VS}.http[2].match[1]: rule "copy" match #1 is not used '
        "(duplicate/overlapping match in rule #1)",
    ]


def test_http_matches_with_the_same_uri_but_other_conditions_are_no_duplicates() -> None:
    """Same uri, but another header (or value), method, query parameter, port or source:
    each can match what the earlier cannot, so neither IST0130 nor IST0131. (Istio's prefix
    coverage check, which does not compare sources, leaves equal prefixes alone.)"""
    assert (
        _found("""
  http:
  - match: [{uri: {prefix: /a}, headers: {x-user: {exact: jo}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /a}, headers: {x-user: {exact: al}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /a}, headers: {x-user: {prefix: jo}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /a}, headers: {x-team: {exact: jo}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /a}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /a}, queryParams: {v: {exact: "2"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /a}, port: 9090}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /a}, sourceLabels: {version: v1}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /a}, sourceLabels: {version: v2}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {exact: /a}}, {uri: {regex: /a.*}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
""")
        == []
    )


def test_http_match_covered_by_an_earlier_prefix_is_ist0131() -> None:
    """Istio's overlap check, with the wording `istioctl` prints for it: a later match whose
    uri prefix starts with an earlier one's, with the same port, method, headers and query
    parameters (a missing method is GET to Istio)."""
    assert _found("""
  http:
  - name: slash
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: slash-api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{name: get, uri: {prefix: /api/v2}, method: {exact: GET}}]
    route: [{destination: {host: reviews, subset: v2}}]
""") == [
        f'Info [IST0131] {VS}.http[1].match[0]: rule "slash-api" match #0 of prefix /api is not '
        'used (duplicate/overlapping match in rule #0 of prefix / on "slash")',
        f'Info [IST0131] {VS}.http[2].match[0]: rule #2 match "get" of prefix /api/v2 is not '
        'used (duplicate/overlapping match in rule #0 of prefix / on "slash")',
        f'Info [IST0131] {VS}.http[2].match[0]: rule #2 match "get" of prefix /api/v2 is not '
        'used (duplicate/overlapping match in rule #0 of prefix /api on "slash-api")',
    ]


def test_http_prefix_not_covered_when_a_condition_differs() -> None:
    """Near misses: the later prefix is longer, but a header more, another header value, a
    method other than GET, another port, or the earlier prefix is the longer one."""
    assert (
        _found("""
  http:
  - match: [{uri: {prefix: /shop/cart}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /shop}, headers: {x-user: {exact: jo}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /shop/a}, headers: {x-user: {exact: al}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /shop/b}, headers: {x-user: {exact: jo}, x-team: {exact: t}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /shop/cart/x}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /shop/cart/y}, port: 9090}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {exact: /shop/cart/z}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
""")
        == []
    )
