"""Atomic file output: a killed run leaves either the old file or the new one.

Every file a stage produces goes through these helpers: write a temporary file
in the target directory, flush and fsync it, then `os.replace` it over the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file beside `path`; on clean exit rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def atomic_write_json(path: Path | str, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_write_jsonl(path: Path | str, rows: Iterable[Any]) -> int:
    """Write one compact JSON document per line; returns the number of lines."""
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")
            n += 1
    return n


@contextmanager
def atomic_dir(out_dir: Path | str) -> Iterator[Path]:
    """Yield `out_dir.tmp/` to fill; on clean exit it replaces `out_dir` in one rename."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out_dir.with_name(out_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def path_digest(path: Path | str, quick_over: int | None = None,
                ignore: Callable[[str], bool] | None = None) -> str:
    """sha256 over a file, or over a folder's files (relative names and contents); 'missing' if absent.
    Files that change without the content changing are skipped: HF datasets' map caches (cache-*.arrow),
    temp and lock files. With `quick_over`, larger files count by size and mtime only (a cache key that
    need not read a 3 GB model); without it every byte is read (a checkpoint's fingerprint). `ignore` skips
    more files by their path relative to the folder (the pipeline passes `.dvcignore`'s patterns)."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        if quick_over is not None and st.st_size > quick_over:
            return f"{st.st_size}:{st.st_mtime_ns}"
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for sub in sorted(p for p in path.rglob("*") if p.is_file() and not _volatile(p.name)):
        rel = sub.relative_to(path).as_posix()
        if ignore is None or not ignore(rel):
            h.update(f"{rel}\0{path_digest(sub, quick_over)}\0".encode())
    return h.hexdigest()


def _volatile(name: str) -> bool:
    return (name.startswith("cache-") and name.endswith(".arrow")) or name.endswith((".tmp", ".lock"))
