"""Fault injection, outputs: every writer is atomic under a full disk (patched writer), read-only folders are
refused up front, and ``recapture serve`` removes its temporary folder on SIGTERM / Ctrl-C (and stale ones)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import recapture.fileio as fileio
from recapture.body.parts import LIP20
from recapture.config import ExperimentConfig, save_config
from recapture.data.formats import write_annotations, write_layout, write_pairs
from recapture.data.manifest import SplitSpec, write_manifest
from recapture.fileio import OutputPathError, atomic_write_text, check_output_dir, check_output_file
from recapture.hub import write_model_file

pytestmark = pytest.mark.faults

SPLIT = SplitSpec(images="i", layouts="l", annotations="a.csv", pairs="p.csv")
WRITERS: dict[str, Callable[[Path], object]] = {
    "annotations": lambda p: write_annotations(p, ["a.jpg"], np.ones((1, 18, 2), np.int64)),
    "pairs": lambda p: write_pairs(p, [("a.jpg", "b.jpg")]),
    "layout": lambda p: write_layout(p, np.ones((4, 3), np.uint8), LIP20),
    "manifest": lambda p: write_manifest(p, "x", "lip20", (32, 24), {"train": SPLIT}),
    "config": lambda p: save_config(ExperimentConfig(), p),
    "model-file": lambda p: write_model_file({"w": torch.ones(3)}, p, {"kind": "test"}),
    "text": lambda p: atomic_write_text(p, "new"),
}
SUFFIX = {"layout": ".png", "manifest": ".yaml", "config": ".yaml", "model-file": ".safetensors"}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          writer: str) -> None:
    path = tmp_path / f"out{SUFFIX.get(writer, '.csv')}"
    path.write_bytes(b"the old, complete file")

    def full(target: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "fsync_path", full)
    with pytest.raises(OSError) as caught:
        WRITERS[writer](path)
    assert fileio.disk_full(caught.value)
    assert path.read_bytes() == b"the old, complete file"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    monkeypatch.undo()
    WRITERS[writer](path)
    assert path.read_bytes() != b"the old, complete file" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_atomic_outputs_get_ordinary_permissions_not_the_temporary_files_private_ones(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask


def test_read_only_and_missing_locations_are_refused_before_writing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_file(tmp_path / "no" / "x.png")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_dir(tmp_path / "file" / "sub")
    monkeypatch.setattr(fileio.os, "access", lambda path, mode: False)  # root ignores chmod: patch the check
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_file(tmp_path / "x.png")
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_dir(tmp_path / "new")


def test_stale_editor_folders_are_cleaned_and_fresh_ones_kept(tmp_path: Path) -> None:
    from recapture.app.server import WORK_PREFIX, clean_stale_work_dirs

    stale, fresh, other = tmp_path / f"{WORK_PREFIX}old", tmp_path / f"{WORK_PREFIX}new", tmp_path / "mine-old"
    for folder in (stale, fresh, other):
        folder.mkdir()
        (folder / "recapture.png").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (stale, other):
        os.utime(folder, (two_days_ago, two_days_ago))
    assert clean_stale_work_dirs(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM])  # Ctrl-C (SIGINT) takes the same exit path
def test_serve_removes_its_temporary_folder_when_stopped(tmp_path: Path, tiny_model_file: Path,
                                                         stop: signal.Signals) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_ANALYTICS_ENABLED": "False", "RECAPTURE_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "recapture", "serve", "--model", str(tiny_model_file),
                                "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        deadline = time.monotonic() + 180
        up = False
        while not up and process.poll() is None and time.monotonic() < deadline:
            with socket.socket() as sock:
                up = sock.connect_ex(("127.0.0.1", port)) == 0
            time.sleep(0.2)
        assert up, process.communicate(timeout=10)[0] if process.poll() is not None else "server did not start"
        assert list(temp.glob("recapture-app-*")), "the editor made no work folder"
        process.send_signal(stop)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert not list(temp.glob("recapture-app-*"))
