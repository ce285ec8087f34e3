"""Atomic file output: a killed run leaves either the old file or the new one.

Every file a stage produces goes through these helpers: write a temporary file
in the target directory, flush and fsync it, then `os.replace` it over the target.
A folder (`atomic_dir`) is swapped in with one rename-exchange where the OS has it
(Linux renameat2), so the old or the new folder is always in place. Only a regular
file (or a new path) is ever written over by a file, and only a real folder by a
folder: a symlink, FIFO, device or socket at an output path is refused in one line
(`check_output_path`, `check_output_dir`), which `config.load_config` runs for every
output field before a stage starts. Temporary names are unique per run.
`read_text_input` and `read_json_input` read a user-given (or a stage's) file with one-line errors;
`path_digest` is the one content digest of a file or folder.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskplan.errors import ConfigError, TaskplanError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file beside `path`; on clean exit rename it over `path`."""
    path = Path(path)
    check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise ConfigError(f"cannot write {path} in {path.parent} ({err.strerror}); choose another output path") from None
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


def _kind(mode: int) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a symlink" if stat.S_ISLNK(mode) else
            "a regular file" if stat.S_ISREG(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a special file")


def _lmode(path: Path) -> int | None:
    """lstat's mode of `path` (a symlink is not followed), None when nothing is there."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigError(f"output path {str(path)[:200]} is unusable ({err.strerror}); choose another path") from None


def check_output_path(path: Path | str) -> None:
    """Refuse to write over anything but a regular file: a directory, symlink, FIFO, device or socket is
    left alone (a symlink is never followed), before any work starts."""
    path = Path(path)
    mode = _lmode(path)
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(f"output path {str(path)[:200]} is {_kind(mode)}; give a file path (only an existing "
                          "regular file is replaced)")


def check_output_dir(path: Path | str) -> None:
    """Refuse an output folder path that exists as anything but a real directory (a file, symlink, FIFO,
    device or socket is never moved, followed or replaced by a folder)."""
    path = Path(path)
    mode = _lmode(path)
    if mode is not None and not stat.S_ISDIR(mode):
        raise ConfigError(f"output folder {str(path)[:200]} exists and is {_kind(mode)}; remove it or choose "
                          "another folder (only an existing folder is replaced)")


def read_text_input(path: Path | str, what: str, error: type[TaskplanError] = ConfigError,
                    hint: str = "check the path", max_bytes: int = 64 << 20) -> str:
    """The UTF-8 text of a user-given file. Anything else (missing, a directory or FIFO, a symlink loop,
    binary bytes, too large) is one line, `cannot read <what> <path> (<why>); <hint>`, raised as `error`."""
    path = Path(path)

    def fail(why: str) -> TaskplanError:
        return error(f"cannot read {what} {path} ({why}); {hint}")

    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise fail("a directory" if stat.S_ISDIR(mode) else "not a regular file")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as err:
        raise fail(err.strerror or type(err).__name__) from None
    if len(data) > max_bytes:
        raise fail(f"larger than {max_bytes >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"not UTF-8 text, byte {err.start}") from None


def read_json_input(path: Path | str, what: str, error: type[TaskplanError] = ConfigError,
                    hint: str = "check the path", max_bytes: int = 16 << 20) -> Any:
    """A user-given JSON file through `read_text_input` (bounded, one-line errors); a file that is not
    JSON, or nests too deeply, is one line too."""
    return parse_json_text(read_text_input(path, what, error, hint, max_bytes), path, what, error, hint)


def parse_json_text(text: str, path: Path | str, what: str, error: type[TaskplanError] = ConfigError,
                    hint: str = "check the path") -> Any:
    """`text`, read from `path`, as JSON; not JSON or nested too deeply is the one-line error of
    `read_json_input` (for a reader that looks at the text before deciding it is JSON)."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise error(f"cannot read {what} {str(path)[:200]} (not JSON: {str(err)[:80]}); {hint}") from None
    except RecursionError:
        raise error(f"cannot read {what} {str(path)[:200]} (nested too deeply); {hint}") from None


@contextmanager
def atomic_dir(out_dir: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `out_dir` to fill; on clean exit it replaces `out_dir` in one rename.

    An existing `out_dir` is swapped with the new folder by one rename-exchange (renameat2), so the
    old or the new folder is always there. Where the OS lacks it, the old folder is renamed to
    `out_dir.old` first; a kill between the two renames is repaired by `recover_dir` on the next start."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    recover_dir(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphan_temporaries(out_dir)
        # a name of its own: two runs on the same out_dir never share (or delete) each other's temp folder
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=".tmp", dir=out_dir.parent))
    except OSError as err:
        raise ConfigError(f"cannot create a folder beside {str(out_dir)[:200]} ({err.strerror}); "
                          "choose another output folder") from None
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if out_dir.is_dir() and not out_dir.is_symlink() and _rename_exchange(tmp, out_dir):
            shutil.rmtree(tmp, ignore_errors=True)   # now holds the old folder
            return
        check_output_dir(out_dir)    # what another process put there meanwhile is not moved either
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


def _remove_orphan_temporaries(out_dir: Path) -> None:
    """Delete temp folders of `out_dir` whose process is gone (a killed run's); a live run's stay."""
    prefix = f".{out_dir.name}."
    for tmp in out_dir.parent.glob(f"{glob_escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dir(out_dir: Path | str) -> bool:
    """Put `out_dir.old` back when a kill left it without `out_dir` (see `atomic_dir`); True if it did."""
    out_dir = Path(out_dir)
    old = out_dir.with_name(out_dir.name + ".old")
    if out_dir.exists() or out_dir.is_symlink() or not old.is_dir():
        return False
    os.replace(old, out_dir)
    return True


def path_digest(path: Path | str, quick_over: int | None = None,
                ignore: Callable[[str], bool] | None = None, *, flat: bool = False) -> str:
    """sha256 of a file's bytes, or over a folder's files (relative names and contents); 'missing' if absent.
    Files that change without the content changing are skipped: HF datasets' map caches (cache-*.arrow),
    temp and lock files. With `quick_over`, larger files count by size and mtime only (a cache key that
    need not read a 3 GB model); without it every byte is read (a checkpoint's fingerprint). `ignore` skips
    more files by their path relative to the folder (the pipeline passes `.dvcignore`'s patterns).

    `flat=True` is the model registry's format (`model_digest` tags, tracking/registry.py): each file's
    name and then its bytes in one sha256 stream, no file skipped, `quick_over` and `ignore` unused. It is
    kept as it was because registered versions are found again by the digest they were tagged with."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        if quick_over is not None and st.st_size > quick_over and not flat:
            return f"{st.st_size}:{st.st_mtime_ns}"
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for sub in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = sub.relative_to(path).as_posix()
        if flat:
            h.update(rel.encode() + b"\0")
            with open(sub, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        elif not _volatile(sub.name) and (ignore is None or not ignore(rel)):
            h.update(f"{rel}\0{path_digest(sub, quick_over)}\0".encode())
    return h.hexdigest()


def _volatile(name: str) -> bool:
    return (name.startswith("cache-") and name.endswith(".arrow")) or name.endswith((".tmp", ".lock"))


_RENAME_EXCHANGE = 2   # linux/fs.h
_AT_FDCWD = -100


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    func = _renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):   # an old kernel, or a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2 (glibc >= 2.28), or None (macOS, musl without it, no libc)."""
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None
    if func is not None:
        func.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
        func.restype = ctypes.c_int
    return func
