"""Files written safely and read strictly, at the bottom of the layering (no ``recapture`` imports).

* :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text`: every output is written
  under a hidden temporary name in its own folder, fsynced, then renamed over the target with
  ``os.replace``; a crash or a full disk leaves the old file (or nothing), never half a file.
* :func:`check_output_file` / :func:`check_output_dir`: a command checks where it will write before any
  work starts (missing folder, not writable, a folder given as a file, an input given as the output).
* :func:`write_sums` / :func:`verify_sums`: a ``SHA256SUMS`` sidecar over the files of a folder.
* :func:`load_yaml`: ``yaml.safe_load`` that refuses duplicate keys (``DuplicateKeyError`` naming the key
  and line) instead of silently keeping the last value.
* :func:`disk_full`: whether an ``OSError`` means "no space left" (ENOSPC, EDQUOT).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

__all__ = ["OutputPathError", "atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_file",
           "check_output_dir", "disk_full", "fsync_path", "SUMS_NAME", "write_sums", "verify_sums",
           "DuplicateKeyError", "load_yaml"]

SUMS_NAME = "SHA256SUMS"
#: The process's file-creation mask, read once at import: temporary files are made private (0600) by
#: ``mkstemp``, so outputs get ordinary permissions (0666 minus the mask) before they are renamed into place.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class OutputPathError(ValueError):
    """An output path cannot be written (the message names it and says why)."""


def disk_full(error: BaseException) -> bool:
    """True when ``error`` reports a full disk or an exhausted quota: an OSError with ENOSPC/EDQUOT, or a
    library error wrapping one (safetensors reports "No space left on device (os error 28)")."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return any(sign in text for sign in (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT),
                                         f"os error {errno.ENOSPC})", f"os error {errno.EDQUOT})"))


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` (same suffix, so writers pick the format by it); when the
    block ends normally it is fsynced and renamed onto ``out``, otherwise deleted."""
    out = Path(out)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".partial{out.suffix}", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        fsync_path(tmp)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(out: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``out`` atomically; returns ``out``."""
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return Path(out)


def atomic_write_text(out: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``out`` atomically; returns ``out``."""
    return atomic_write_bytes(out, text.encode("utf-8"))


def check_output_file(path: str | Path, what: str = "output", inputs: Sequence[str | Path] = (),
                      overwrite: bool = False, exist_ok: bool = True) -> Path:
    """``path`` if a file can be written there, else OutputPathError (checked before any work starts).

    Refused: a missing or non-writable parent folder, an existing folder, a path that resolves to one
    of ``inputs`` (unless ``overwrite``), and an existing file when neither ``exist_ok`` nor ``overwrite``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"{what} {path}: folder {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: folder {parent} is not writable")
    if not overwrite:
        resolved = path.resolve()
        if any(Path(p).resolve() == resolved for p in inputs):
            raise OutputPathError(f"{what} {path} is also an input; give another file name or pass --overwrite")
        if path.exists() and not exist_ok:
            raise OutputPathError(f"{what} {path} exists; give another file name or pass --overwrite")
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """``path`` if it is (or can be created as) a writable folder, else OutputPathError. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: {existing} is not writable")
    return path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest (``hashlib`` algorithm name) of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(folder: str | Path) -> Path:
    """Write ``folder/SHA256SUMS`` (``sha256sum`` format) over every other visible file of ``folder``, fsynced."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.name != SUMS_NAME and not p.name.startswith("."))
    sums = folder / SUMS_NAME
    sums.write_text("".join(f"{file_digest(folder / n)}  {n}\n" for n in names), encoding="utf-8")
    fsync_path(sums)
    return sums


def verify_sums(folder: str | Path) -> str | None:
    """None if every file listed in ``folder/SHA256SUMS`` exists with its digest (and no visible file is
    unlisted); else the reason. A folder without the sidecar returns ``"no SHA256SUMS"``."""
    folder = Path(folder)
    sums = folder / SUMS_NAME
    if not sums.is_file():
        return f"no {SUMS_NAME}"
    listed: dict[str, str] = {}
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        return f"unreadable {SUMS_NAME} ({err})"
    for line in lines:
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            return f"malformed {SUMS_NAME} line {line[:80]!r}"
        listed[name] = digest
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != SUMS_NAME
               and not p.name.startswith(".")}  # hidden files (a desktop's index) are not part of it
    if present - set(listed):
        return f"file(s) not in {SUMS_NAME}: {', '.join(sorted(present - set(listed)))}"
    for name, digest in listed.items():
        if name not in present:
            return f"{name} is missing"
        if file_digest(folder / name) != digest:
            return f"{name} does not match its sha256 (the file is damaged)"
    return None


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping names the same key twice."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges are overridden by explicit keys, as YAML intends
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(None, None, f"duplicate key {key!r} (first on line {seen[key]})",
                                            key_node.start_mark)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` for a key given twice in one mapping."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
