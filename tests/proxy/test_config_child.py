"""The proxy translates config in a child process and never loads the translator itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from fastmesh.config import ConfigError
from fastmesh.proxy._config import load_file, load_file_in_child

CONFIGS = Path(__file__).parents[1] / "configs"


def test_child_gives_the_same_result_as_in_process() -> None:
    path = CONFIGS / "front_proxy.yaml"
    child = trio.run(load_file_in_child, path)
    local = load_file(path)
    assert child.compiled == local.compiled
    assert child.snapshot["version"] == child.version
    assert child.document == local.document
    assert child.document["node"]["id"] == child.node_id


def test_child_reports_every_problem_like_in_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    doc = json.loads(json.dumps(load_file(CONFIGS / "front_proxy.yaml").document))
    doc["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE"
    doc["bogus"] = 1
    bad.write_text(json.dumps(doc))
    for path in (bad, tmp_path / "missing.yaml"):
        with pytest.raises(ConfigError) as local:
            load_file(path)
        with pytest.raises(ConfigError) as child:
            trio.run(load_file_in_child, path)
        assert str(child.value) == str(local.value)
        assert child.value.problems == local.value.problems


def test_serve_path_does_not_import_yaml_or_the_translator() -> None:
    code = f"""
import sys, trio
import fastmesh.proxy.cli, fastmesh.proxy._server, fastmesh.proxy._admin
from fastmesh.proxy._config import load_file_in_child
trio.run(load_file_in_child, {str(CONFIGS / "front_proxy.yaml")!r})
print(sorted(m for m in sys.modules if "yaml" in m or m.startswith("fastmesh.config")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = ast.literal_eval(out.stdout)
    # `_stamp` (os.stat of watched files) is the watcher's; the translator stays unloaded.
    assert loaded == [
        "fastmesh.config",
        "fastmesh.config._compile",
        "fastmesh.config._errors",
        "fastmesh.config._stamp",
    ]


def test_bootstrap_json_splices_the_effective_node(tmp_path: Path) -> None:
    loaded = load_file(CONFIGS / "front_proxy.yaml")
    doc = dict(loaded.document)
    shown = json.loads(loaded.bootstrap_json("n1", "c1"))
    assert shown == {**doc, "node": {**doc["node"], "id": "n1", "cluster": "c1"}}
    no_node = tmp_path / "no_node.json"
    no_node.write_text(json.dumps({k: v for k, v in doc.items() if k != "node"}))
    bare = load_file(no_node)
    assert "node" not in bare.document
    assert json.loads(bare.bootstrap_json("n1", ""))["node"] == {"id": "n1", "cluster": ""}
