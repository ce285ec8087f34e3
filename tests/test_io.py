"""Atomic outputs, input reading and content digests (taskplan/io.py)."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from taskplan import io
from taskplan.errors import ConfigError, InstanceError
from taskplan.io import (
    atomic_dir,
    atomic_write_json,
    check_output_path,
    parse_json_text,
    path_digest,
    read_json_input,
    read_text_input,
    recover_dir,
)


def _device(path: Path) -> Path:
    """A character device (same numbers as /dev/null) made inside the test's own folder, so a bug can
    never move or replace a real system device."""
    import stat as st

    try:
        os.mknod(path, st.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def _fill(folder: Path, text: str) -> None:
    (folder / "weights.txt").write_text(text)


def _old_and_new(tmp_path):
    out = tmp_path / "models" / "sft"
    with atomic_dir(out) as tmp:
        _fill(tmp, "old")
    return out


def test_atomic_dir_swaps_in_the_new_folder_and_leaves_no_temporaries(tmp_path):
    out = _old_and_new(tmp_path)
    with atomic_dir(out) as tmp:
        _fill(tmp, "new")
    assert (out / "weights.txt").read_text() == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sft"]


def test_a_kill_during_the_exchange_or_after_it_leaves_a_whole_folder(tmp_path, monkeypatch):
    out = _old_and_new(tmp_path)
    if io._renameat2() is None:
        pytest.skip("no renameat2 on this OS (the fallback is tested below)")

    def killed(*_a, **_k):
        raise KeyboardInterrupt   # stands in for SIGKILL: nothing after this point runs

    monkeypatch.setattr(io, "_rename_exchange", killed)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            _fill(tmp, "new")
    assert (out / "weights.txt").read_text() == "old"
    monkeypatch.undo()
    real_rmtree = io.shutil.rmtree

    def rmtree(path, *a, **k):   # killed right after the exchange, before the old folder is removed
        if (Path(path) / "weights.txt").read_text() == "old":
            killed()
        real_rmtree(path, *a, **k)

    monkeypatch.setattr(io.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            _fill(tmp, "new")
    assert (out / "weights.txt").read_text() == "new"


def test_a_kill_between_the_two_renames_of_the_fallback_is_recovered(tmp_path, monkeypatch):
    out = _old_and_new(tmp_path)
    monkeypatch.setattr(io, "_rename_exchange", lambda a, b: False)   # an OS without renameat2
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 2:       # the kill: after `sft -> sft.old`, before `sft.tmp -> sft`
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            _fill(tmp, "new")
    monkeypatch.setattr(io.os, "replace", real_replace)
    monkeypatch.setattr(io, "_alive", lambda pid: False)              # the killed run's process is gone
    assert not out.exists() and (out.parent / "sft.old").is_dir()   # the window the exchange closes
    assert recover_dir(out) and (out / "weights.txt").read_text() == "old"
    real_replace(out, out.parent / "sft.old")                         # the same crash again ...
    with atomic_dir(out) as tmp:                                      # ... is repaired by the next start
        assert (out / "weights.txt").read_text() == "old"
        _fill(tmp, "new")
    assert (out / "weights.txt").read_text() == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sft"]


def test_the_fallback_swaps_too(tmp_path, monkeypatch):
    out = _old_and_new(tmp_path)
    monkeypatch.setattr(io, "_rename_exchange", lambda a, b: False)
    with atomic_dir(out) as tmp:
        _fill(tmp, "new")
    assert (out / "weights.txt").read_text() == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sft"]


@pytest.mark.parametrize("kind", ["dir", "fifo", "device"])
def test_outputs_never_replace_a_directory_fifo_or_device(tmp_path, kind):
    target = tmp_path / "out"
    if kind == "dir":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target = _device(tmp_path / "out")
    with pytest.raises(ConfigError, match="output path"):
        atomic_write_json(target, {"a": 1})
    assert (target.is_dir() if kind == "dir" else not target.is_file())
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_over_a_regular_file_or_a_new_path_is_fine(tmp_path):
    check_output_path(tmp_path / "new.json")
    atomic_write_json(tmp_path / "sub" / "new.json", [1])
    atomic_write_json(tmp_path / "sub" / "new.json", [2])
    assert json.loads((tmp_path / "sub" / "new.json").read_text()) == [2]


def test_read_text_input_gives_one_line_errors(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x00\xff\xfe")
    for path, fragment in [(tmp_path, "a directory"), (loop, "symbolic links"), (binary, "not UTF-8"),
                           (tmp_path / "absent", "no such file")]:
        with pytest.raises(InstanceError, match=fragment) as info:
            read_text_input(path, "instance file", InstanceError)
        assert "\n" not in str(info.value)
    (tmp_path / "ok.txt").write_text("héllo")
    assert read_text_input(tmp_path / "ok.txt", "plan file") == "héllo"


def test_read_json_input_gives_one_line_errors_with_the_hint(tmp_path, unreadable_files):
    (tmp_path / "bad.json").write_text("{nope")
    cases = [(tmp_path / "bad.json", "not JSON"), (unreadable_files["deep"], "nested too deeply"),
             (tmp_path / "absent.json", "no such file"), (unreadable_files["binary"], "not UTF-8")]
    for path, fragment in cases:
        with pytest.raises(InstanceError, match=fragment) as info:
            read_json_input(path, "plan file", InstanceError, "write one again")
        message = str(info.value)
        assert "\n" not in message and message.startswith("cannot read plan file ") and \
            message.endswith("; write one again")
    with pytest.raises(ConfigError, match=r"cannot read record x\.json \(not JSON: .*\); check the path"):
        parse_json_text("[1,", "x.json", "record")
    (tmp_path / "ok.json").write_text('{"a": [1]}')
    assert read_json_input(tmp_path / "ok.json", "record") == {"a": [1]}


def _model_like_folder(root: Path) -> Path:
    """A small fixed folder shaped like a model folder, with a cache and a lock file in it."""
    root.mkdir()
    (root / "sub").mkdir()
    (root / "config.json").write_text('{"model_type": "qwen2"}\n')
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 3)
    (root / "sub" / "tokenizer.json").write_text("{}")
    (root / "cache-1.arrow").write_bytes(b"volatile")
    (root / "x.lock").write_text("")
    return root


# Computed with the digest functions before they became one (tracking/registry.py `folder_digest`, io.py
# `path_digest`): the registry finds a version again by the `model_digest` it was tagged with, and the
# pipeline's cache keys and checkpoint fingerprints are built on the folder digest, so neither may move.
REGISTRY_DIGEST = "5b7de900453a15fd67f5a451f72718d7f55c7f5a85c73c6bc9c0953f154d0a4b"
FOLDER_DIGEST = "52361dcbab3fd81e34a6f31114aa3efa4de81a13fcb55118fa354fc7504c0909"


def test_digests_of_a_fixed_folder_stay_what_they_were(tmp_path):
    folder = _model_like_folder(tmp_path / "model")
    assert path_digest(folder, flat=True) == REGISTRY_DIGEST
    assert path_digest(folder) == FOLDER_DIGEST
    config = folder / "config.json"
    assert path_digest(config) == hashlib.sha256(config.read_bytes()).hexdigest(), "a file: sha256 of its bytes"
    assert path_digest(tmp_path / "absent") == "missing"


def test_the_registry_format_reads_every_file_and_the_cache_key_skips_volatile_ones(tmp_path):
    folder = _model_like_folder(tmp_path / "model")
    (folder / "x.lock").write_text("held")
    (folder / "cache-1.arrow").write_bytes(b"rebuilt")
    assert path_digest(folder) == FOLDER_DIGEST, "cache and lock files do not change the folder digest"
    assert path_digest(folder, flat=True) != REGISTRY_DIGEST, "the registry's digest covers every byte"
    (folder / "x.lock").write_text("")
    (folder / "cache-1.arrow").write_bytes(b"volatile")
    (folder / "sub" / "tokenizer.json").write_text("[]")
    assert path_digest(folder) != FOLDER_DIGEST and path_digest(folder, flat=True) != REGISTRY_DIGEST
    big = folder / "model.safetensors"
    assert path_digest(big, quick_over=10).startswith(f"{big.stat().st_size}:"), "large files by size and mtime"
    assert path_digest(big, quick_over=10, flat=True) == hashlib.sha256(big.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["file", "symlink", "fifo", "device"])
def test_an_output_folder_never_replaces_a_file_symlink_fifo_or_device(tmp_path, kind):
    target = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if kind == "file":
        target.write_text("keep")
    elif kind == "symlink":
        target.symlink_to(elsewhere)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target = _device(tmp_path / "out")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match=r"output folder .* exists and is a"):
        with atomic_dir(target) as tmp:
            _fill(tmp, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing moved, no temporary left"
    assert list(elsewhere.iterdir()) == [], "a symlink is not followed"
    if kind == "file":
        assert target.read_text() == "keep"


def test_two_runs_on_one_output_folder_use_their_own_temporaries(tmp_path):
    out = tmp_path / "trajectories"
    with atomic_dir(out) as first, atomic_dir(out) as second:
        assert first != second
        _fill(first, "first")
        _fill(second, "second")
    assert (out / "weights.txt").read_text() == "first"   # the outer run finished last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trajectories"]


def test_a_stage_refuses_an_unusable_output_before_any_work(tmp_path):
    from taskplan.config import load_config
    from taskplan.data.trajectories import GenerateConfig

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "params.yaml").write_text("generate: {}\n")
    with pytest.raises(ConfigError, match="output folder .*fifo exists and is a FIFO"):
        load_config(GenerateConfig, "generate", tmp_path / "params.yaml", [f"generate.out_dir={tmp_path / 'fifo'}"])
    (tmp_path / "link").symlink_to(tmp_path / "params.yaml")
    with pytest.raises(ConfigError, match="output path .*link is a symlink"):
        load_config(GenerateConfig, "generate", tmp_path / "params.yaml",
                    [f"generate.metrics_path={tmp_path / 'link'}"])
