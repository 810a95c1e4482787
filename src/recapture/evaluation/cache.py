"""A disk cache of Inception pool features of image files, keyed by the file's content.

Re-scoring a method then costs only its own images: the real targets (and an ``--fid-reference``
folder) are read from the cache. Keys are the SHA-1 of the file's bytes (plus, for an image resized
before the network, the size it was resized to), in a folder named after the backbone's weights and
the preprocessing, so a change of either never reuses stale features.

Default folder: ``$RECAPTURE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/recapture/features``, else
``~/.cache/recapture/features``; ``recapture evaluate --cache-dir DIR`` overrides it, ``--no-cache``
disables it. One ``.npy`` file (8 kB, float32) per image; written atomically (temporary file in the
same folder, then ``os.replace``), so concurrent runs and interrupted runs never leave a torn file.
A file that cannot be read is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from recapture.fileio import atomic_path


def default_cache_dir() -> Path:
    """``$RECAPTURE_CACHE_DIR``, else ``$XDG_CACHE_HOME/recapture/features``, else ``~/.cache/recapture/features``."""
    if os.environ.get("RECAPTURE_CACHE_DIR"):
        return Path(os.environ["RECAPTURE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recapture" / "features"


def file_digest(path: str | Path) -> str:
    """Hex SHA-1 of a file's bytes."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureCache:
    """Feature vectors by key: in memory for the run, on disk under ``folder / namespace`` when ``folder``.

    Args:
        folder: cache root (None: memory only).
        namespace: sub-folder naming the backbone and preprocessing the features come from.
    """

    def __init__(self, folder: str | Path | None, namespace: str) -> None:
        self.folder = None if folder is None else Path(folder) / namespace
        self.memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached features of ``key``, or None."""
        if key in self.memory:
            self.hits += 1
            return self.memory[key]
        if self.folder is not None:
            try:
                features = np.load(self._path(key), allow_pickle=False)
            except (OSError, ValueError):
                features = None
            if features is not None and features.ndim == 1 and np.isfinite(features).all():
                self.memory[key] = features
                self.hits += 1
                return features
        self.misses += 1
        return None

    def put(self, key: str, features: np.ndarray) -> None:
        """Store ``(D,)`` features under ``key`` (atomically on disk)."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        self.memory[key] = features
        if self.folder is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            np.save(temporary, features, allow_pickle=False)
