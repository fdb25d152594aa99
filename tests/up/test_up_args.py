"""`fastmesh up shift|fault` refuse what the control plane would reject, in their own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastmesh.up._tweak import TweakError, parse_weights, set_fault


def test_weights_name_every_version_and_sum_to_100() -> None:
    assert parse_weights("v2=50,v3=50") == {"v1": 0, "v2": 50, "v3": 50}
    assert parse_weights("v3=100") == {"v1": 0, "v2": 0, "v3": 100}
    with pytest.raises(TweakError, match="sum to 90, not 100"):
        parse_weights("v1=40,v2=50")
    with pytest.raises(TweakError, match="'v4=100': expected VERSION=PERCENT"):
        parse_weights("v4=100")
    with pytest.raises(TweakError, match="expected VERSION=PERCENT"):
        parse_weights("v1=half")


def test_fault_checks_service_and_delay(tmp_path: Path) -> None:
    (tmp_path / "mesh").mkdir()
    with pytest.raises(TweakError, match="faults go on frontend, details, ratings"):
        set_fault(tmp_path, "reviews", abort=503, delay=None, percent=100)
    with pytest.raises(TweakError, match="--delay '2x'"):
        set_fault(tmp_path, "ratings", abort=None, delay="2x", percent=100)
    path = set_fault(tmp_path, "ratings", abort=None, delay="1.5s", percent=10)
    assert "fixedDelay: 1.5s" in path.read_text()
    set_fault(tmp_path, "ratings", abort=None, delay=None, percent=100)
    assert not path.exists()
