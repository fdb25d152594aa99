"""The file registry: the first load before `started`, then every edit of the directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from fastmesh.controlplane import FileRegistry, MeshConfig
from fastmesh.controlplane._watch import DirectoryWatch

from .harness import service, workload, write_yaml


@pytest.mark.parametrize("watched", [True, False], ids=["inotify", "polled"])
async def test_edits_additions_and_removals_are_published(
    tmp_path: Path, watched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With inotify nothing is polled (an hour between polls: every change arrives from
    events); without it, a rescan every poll interval finds the same changes."""
    write_yaml(tmp_path / "a.yaml", service("a", 8080))
    if not watched:
        monkeypatch.setattr(DirectoryWatch, "open", classmethod(lambda cls, root: None))
    registry = FileRegistry(tmp_path, poll_interval=3600 if watched else 0.01)
    send, receive = trio.open_memory_channel[MeshConfig](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run, send.send_nowait)
        first = receive.receive_nowait()  # published before started()
        assert [s.name for s in first.services] == ["a"]

        async def next_config() -> MeshConfig:
            with trio.fail_after(5):
                return await receive.receive()

        write_yaml(tmp_path / "b.yaml", service("b", 8081), workload("b-1", "b", "v1", 1234))
        config = await next_config()
        assert sorted(s.name for s in config.services) == ["a", "b"]
        assert [w.name for w in config.workloads] == ["b-1"]

        parsed, before = registry.parsed_files, config
        write_yaml(tmp_path / "a.yaml", service("a", 9090))
        config = await next_config()
        assert {s.name: s.ports[0].number for s in config.services} == {"a": 9090, "b": 8081}
        assert registry.parsed_files == parsed + 1  # only the edited file is parsed again
        # what did not change stays the very same objects (the hub diffs by identity)
        assert config.workloads[0] is before.workloads[0]
        assert next(s for s in config.services if s.name == "b") in before.services

        write_yaml(tmp_path / "dup.yaml", service("a", 7070))  # defined again: left out
        config = await next_config()
        assert {s.name: s.ports[0].number for s in config.services} == {"a": 9090, "b": 8081}
        [problem] = registry.problems
        assert str(problem) == (
            "dup.yaml: Service default/a: metadata.name: also defined in a.yaml"
        )
        (tmp_path / "dup.yaml").unlink()
        await next_config()

        (tmp_path / "b.yaml").unlink()
        config = await next_config()
        assert [s.name for s in config.services] == ["a"]

        (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
        config = await next_config()
        assert config.services == ()
        assert [str(p) for p in registry.problems] == [
            "a.yaml: Service default/a: spec: is required"
        ]
        nursery.cancel_scope.cancel()


async def test_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await FileRegistry(tmp_path / "nope").run(lambda config: None)


def test_edits_in_place_give_the_config_a_full_load_would(tmp_path: Path) -> None:
    """An edit redefining the same resources is swapped in where they were (no rescan of
    every resource), again and again; a duplicate or an ignored file changes nothing."""
    for name in "abc":
        write_yaml(
            tmp_path / f"{name}.yaml",
            service(name, 8080),
            *(workload(f"{name}-{i}", name, "v1", 1000 + i) for i in range(3)),
        )
    registry = FileRegistry(tmp_path)
    before = registry.load()
    for port in (2000, 3000):  # twice: the second edit finds the first's resources
        write_yaml(
            tmp_path / "b.yaml",
            service("b", 8080),
            *(workload(f"b-{i}", "b", "v1", port + i) for i in range(3)),
        )
        config = registry.refresh({tmp_path / "b.yaml"})
        assert config == FileRegistry(tmp_path).load()
        assert config.workloads[0] is before.workloads[0]  # a-0: untouched, same object
    assert [w.name for w in config.workloads] == [w.name for w in before.workloads]

    (tmp_path / ".b.yaml.tmp").write_text("not: [yaml")  # an editor's temporary file
    assert registry.refresh({tmp_path / ".b.yaml.tmp"}) is config

    write_yaml(tmp_path / "dup.yaml", workload("c-0", "c", "v2", 9999))  # defined twice
    config = registry.refresh({tmp_path / "dup.yaml"})
    assert config == FileRegistry(tmp_path).load()
    write_yaml(tmp_path / "dup.yaml", workload("c-0", "c", "v3", 9998))
    assert registry.refresh({tmp_path / "dup.yaml"}) == FileRegistry(tmp_path).load()
