"""Fault injection, training: run folders never overwritten, damaged checkpoints detected and skipped, a full
disk while saving, kill -9 at a random step with a bit-identical resume.

Kept in tests/test_training.py (not repeated here): a kill -9 in the middle of writing a checkpoint, exact
resume in one process, a non-finite loss stopping before it is saved.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import recapture.training.checkpoint as checkpoint_module
from recapture.cli import app
from recapture.hub import WeightsError, list_checkpoints, load_generator
from recapture.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from recapture.training.run import claim_run_dir, default_run_dir

pytestmark = pytest.mark.faults

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _train_args(manifest: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(CONFIGS / "tiny.yaml"), "--set", f"data.manifest={manifest}",
            "--set", f"train.run_dir={run}", "--set", "train.image_every=0", *extra]


def _save(run: Path, step: int, value: float) -> Path:
    return save_checkpoint(run, step, {"w": torch.full((8,), value)}, {"d": torch.zeros(2)}, {"k": step}, keep_last=5)


def test_new_run_into_an_existing_run_folder_is_refused_and_force_keeps_it(tiny_manifest: Path,
                                                                           tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = CliRunner().invoke(app, _train_args(tiny_manifest, run, "--set", "train.steps=2"))
    assert first.exit_code == 0, first.output
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    again = CliRunner().invoke(app, _train_args(tiny_manifest, run, "--set", "train.steps=1"))
    assert again.exit_code == 1 and "--resume" in again.output and "--force" in again.output
    assert "Traceback" not in again.output and sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    forced = CliRunner().invoke(app, _train_args(tiny_manifest, run, "--set", "train.steps=1", "--force"))
    assert forced.exit_code == 0, forced.output
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and "renamed" in forced.output
    assert [p.name for p in list_checkpoints(aside[0])] == ["step_00000002"]
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001"]


def test_default_run_folder_is_preset_and_timestamp(tmp_path: Path) -> None:
    assert default_run_dir(CONFIGS / "tiny.yaml", "20260101-120000") == Path("runs/tiny-20260101-120000")
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(Exception, match="not empty"):
        claim_run_dir(tmp_path)
    assert claim_run_dir(tmp_path / "new") == (tmp_path / "new", None)


@pytest.mark.parametrize("damage", ["flip-generator", "flip-state", "truncate", "delete-file", "extra-file"])
def test_damaged_checkpoint_is_refused_and_resume_takes_the_newest_good_one(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "run"
    _save(run, 1, 1.0)
    newest = _save(run, 2, 2.0)
    target = newest / ("state.pt" if damage == "flip-state" else "generator.safetensors")
    data = bytearray(target.read_bytes())
    if damage.startswith("flip"):
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[:-10]))
    elif damage == "delete-file":
        target.unlink()
    else:
        (newest / "notes.txt").write_text("?")
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        load_checkpoint(newest)
    loaded = load_checkpoint(run)
    assert loaded.step == 1 and torch.equal(loaded.generator["w"], torch.ones(8))
    assert len(loaded.skipped) == 1 and "step_00000002" in loaded.skipped[0]
    with pytest.raises(WeightsError, match="not a Recapture model"):
        load_generator(newest)


def test_temporary_folders_of_killed_savers_are_removed_by_the_next_save(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _save(run, 1, 1.0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = run / "checkpoints" / f".tmp-step_00000002-{dead.pid}"
    leftover.mkdir()
    (leftover / "generator.safetensors").write_bytes(b"half")
    _save(run, 2, 2.0)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001", "step_00000002"]


def test_cli_resume_names_the_skipped_checkpoint(tiny_manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert CliRunner().invoke(app, _train_args(tiny_manifest, run, "--set", "train.steps=2",
                                               "--set", "train.save_every=1", "--set", "train.keep_last=5")).exit_code == 0
    newest = list_checkpoints(run)[-1]
    target = newest / "generator.safetensors"
    data = bytearray(target.read_bytes())
    data[-7] ^= 0x40
    target.write_bytes(bytes(data))
    loaded = load_generator(run)  # inference falls back too, and says so in the weights' description
    assert loaded.metadata["step"] == "1" and newest.name in loaded.metadata["skipped_checkpoints"]
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--set", "train.steps=3"])
    assert result.exit_code == 0, result.output
    assert f"skipped damaged checkpoint {newest}" in result.output
    assert load_checkpoint(run).step == 3


def test_disk_full_while_saving_is_one_line_and_leaves_no_temporary_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    _save(run, 3, 3.0)

    def full(tensors: object, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", full)
    with pytest.raises(CheckpointError) as caught:
        _save(run, 6, 6.0)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"disk full while writing checkpoint step 6 to {run / 'checkpoints'}")
    assert "the last complete checkpoint is step 3" in text
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000003"]
    assert load_checkpoint(run).step == 3


def test_disk_full_during_cli_training_exits_with_one_line(tiny_manifest: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = checkpoint_module.save_file
    calls = {"n": 0}

    def fills_up(tensors: dict, path: str) -> None:
        calls["n"] += 1
        if calls["n"] > 2:  # the first checkpoint (generator + discriminators) fits, the second does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path)

    monkeypatch.setattr(checkpoint_module, "save_file", fills_up)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, _train_args(tiny_manifest, run, "--set", "train.steps=2",
                                                 "--set", "train.save_every=1"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "disk full while writing checkpoint step 2" in result.output
    assert "last complete checkpoint is step 1" in result.output
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000001"]


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 96 KiB tmpfs (skipped where mounting is not allowed)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the patched-writer tests cover a full disk)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_real_full_filesystem_keeps_the_last_checkpoint(tiny_tmpfs: Path) -> None:
    _save(tiny_tmpfs, 1, 1.0)
    with pytest.raises(CheckpointError, match="disk full while writing checkpoint step 2 .* step 1"):
        save_checkpoint(tiny_tmpfs, 2, {"w": torch.ones(64 * 1024)}, {"d": torch.zeros(2)}, {"k": 2})
    assert [p.name for p in (tiny_tmpfs / "checkpoints").iterdir()] == ["step_00000001"]
    assert load_checkpoint(tiny_tmpfs).step == 1


def _weights(run: Path) -> dict[str, torch.Tensor]:
    newest = list_checkpoints(run)[-1]
    found = {}
    for name in ("generator", "discriminators"):
        found.update({f"{name}.{k}": v for k, v in load_file(str(newest / f"{name}.safetensors")).items()})
    return found


@pytest.mark.slow
def test_kill_9_at_a_random_step_then_resume_is_bit_identical(tiny_manifest: Path, tmp_path: Path) -> None:
    steps = 4
    common = ["--set", f"train.steps={steps}", "--set", "train.save_every=1", "--set", "train.keep_last=10",
              "--set", "data.flip=true", "--set", "train.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = subprocess.Popen([sys.executable, "-m", "recapture",
                                 *_train_args(tiny_manifest, tmp_path / "straight", *common)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # runs alongside
    victim = tmp_path / "killed"
    kill_after = random.Random(os.getpid()).randint(1, steps - 2)
    process = subprocess.Popen([sys.executable, "-m", "recapture", *_train_args(tiny_manifest, victim, *common)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list_checkpoints(victim)) < kill_after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert list_checkpoints(victim), "killed before the first checkpoint"
    resumed = subprocess.run([sys.executable, "-m", "recapture", "train", "--resume", str(victim)], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert straight.wait(timeout=300) == 0
    expected, got = _weights(tmp_path / "straight"), _weights(victim)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), f"{key} differs after kill at step >= {kill_after}"
