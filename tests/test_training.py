"""Training: overfitting a fixed batch, exact resume, DDP equivalence, atomic checkpoints, bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from recapture.cli import app
from recapture.config import ExperimentConfig, load_config
from recapture.data.dataset import collate_pairs
from recapture.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from recapture.training.distributed import DistributedContext
from recapture.training.trainer import Trainer, TrainingError, with_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def tiny_config(manifest: Path, run_dir: Path, *overrides: str) -> ExperimentConfig:
    return load_config(CONFIGS / "tiny.yaml", [f"data.manifest={manifest}", f"train.run_dir={run_dir}", *overrides])


def test_few_steps_lower_l1_on_a_fixed_batch(tiny_manifest: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_manifest, tmp_path / "run", "train.batch_size=4", "data.flip=false",
                         "train.lr=0.001")
    trainer = Trainer(config, tmp_path / "run", CPU)
    batch = collate_pairs([trainer.dataset[i] for i in range(4)])
    losses = [trainer.train_step(batch).g_reconstruction for _ in range(25)]
    assert min(losses[-5:]) < 0.8 * losses[0], losses


def _parameters(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {f"g.{k}": v for k, v in trainer.generator.state_dict().items()}
    state.update({f"d.{k}": v for k, v in trainer.discriminators.state_dict().items()})
    return state


def test_resume_is_exact(tiny_manifest: Path, tmp_path: Path) -> None:
    straight = Trainer(tiny_config(tiny_manifest, tmp_path / "a", "train.steps=5", "train.save_every=0"),
                       tmp_path / "a", CPU)
    straight.train()
    first = Trainer(tiny_config(tiny_manifest, tmp_path / "b", "train.steps=3", "train.save_every=0"),
                    tmp_path / "b", CPU)
    first.train()
    resumed = Trainer(tiny_config(tiny_manifest, tmp_path / "b", "train.steps=5", "train.save_every=0"),
                      tmp_path / "b", CPU)
    resumed.resume(tmp_path / "b")
    assert resumed.step == 3
    resumed.train()
    expected, got = _parameters(straight), _parameters(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6, msg=key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DDP_WORKER = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from safetensors.torch import save_file
    from recapture.config import load_config
    from recapture.training.distributed import setup_distributed, cleanup_distributed
    from recapture.training.trainer import Trainer
    manifest, run_dir, out = sys.argv[1:4]
    torch.set_num_threads(1)
    config = load_config(sys.argv[4], [f"data.manifest={manifest}", f"train.run_dir={run_dir}", "train.steps=1",
                                       "train.batch_size=2", "data.flip=false", "train.save_every=0"])
    context = setup_distributed("cpu")
    trainer = Trainer(config, run_dir, context)
    batch = next(iter(trainer.loader))
    trainer.train_step(batch)
    if context.is_main:
        state = {f"g.{k}": v.contiguous() for k, v in trainer.generator.state_dict().items()}
        state.update({f"d.{k}": v.contiguous() for k, v in trainer.discriminators.state_dict().items()})
        save_file(state, out)
    cleanup_distributed()
""")


@pytest.mark.slow
def test_two_process_gloo_step_equals_one_process_with_concatenated_batch(tiny_manifest: Path,
                                                                          tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tiny_manifest), str(tmp_path / "ddp"), str(out),
                               str(CONFIGS / "tiny.yaml")],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    from safetensors.torch import load_file

    distributed = load_file(str(out))
    config = tiny_config(tiny_manifest, tmp_path / "single", "train.batch_size=4", "data.flip=false")
    single = Trainer(config, tmp_path / "single", CPU)
    batch = next(iter(single.loader))
    single.train_step(batch)
    local = _parameters(single)
    assert local.keys() == distributed.keys()
    for key in local:
        torch.testing.assert_close(distributed[key], local[key], rtol=1e-4, atol=2e-5, msg=key)


KILLED_SAVER = textwrap.dedent("""
    import sys, time, torch
    import recapture.training.checkpoint as checkpoint
    real_save = checkpoint.save_file
    def slow_save(tensors, path):
        real_save(tensors, path)
        print("half-written", flush=True)
        time.sleep(60)
    checkpoint.save_file = slow_save
    checkpoint.save_checkpoint(sys.argv[1], 2, {"w": torch.full((64,), 2.0)}, {"d": torch.ones(3)}, {"k": 2})
""")


def test_sigkill_while_saving_leaves_previous_checkpoint_loadable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run, 1, {"w": torch.ones(64)}, {"d": torch.zeros(3)}, {"k": 1})
    script = tmp_path / "saver.py"
    script.write_text(KILLED_SAVER)
    proc = subprocess.Popen([sys.executable, str(script), str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "half-written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001"]
    loaded = load_checkpoint(run)
    assert loaded.step == 1 and torch.equal(loaded.generator["w"], torch.ones(64))
    save_checkpoint(run, 3, {"w": torch.ones(64)}, {"d": torch.zeros(3)}, {"k": 3}, keep_last=1)
    assert [p.name for p in list_checkpoints(run)] == ["step_00000003"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_manifest, run, "train.steps=2", "train.save_every=0"), run, CPU)
    trainer.train()
    good = load_checkpoint(run)
    with torch.no_grad():
        next(trainer.generator.parameters()).fill_(float("nan"))
    trainer.config = with_overrides(trainer.config, steps=4)
    with pytest.raises(TrainingError, match="non-finite loss at step 3"):
        trainer.train()
    assert load_checkpoint(run).path == good.path


def test_label_set_mismatch_and_missing_dataset_are_clear_errors(tiny_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="label set mismatch"):
        Trainer(tiny_config(tiny_manifest, tmp_path, "model.label_set=market7"), tmp_path, CPU)
    with pytest.raises(TrainingError, match="manifest not found"):
        Trainer(tiny_config(tmp_path / "nope.yaml", tmp_path, ), tmp_path, CPU)


def test_cli_train_writes_run_directory_and_resumes(tiny_manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "cli-run"
    args = ["train", "--config", str(CONFIGS / "tiny.yaml"), "--set", f"data.manifest={tiny_manifest}",
            "--set", f"train.run_dir={run}", "--set", "train.steps=2", "--set", "train.image_every=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (run / "config.yaml").is_file()
    assert [p.name for p in list_checkpoints(run)] == ["step_00000002"]
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--set", "train.steps=3"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run).step == 3
    bad = CliRunner().invoke(app, ["train", "--config", str(CONFIGS / "tiny.yaml"), "--set", "train.nope=1"])
    assert bad.exit_code == 1 and "unknown config key" in bad.output
    exported = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "g.safetensors"),
                                        "--meta", "trained_on=tiny"])
    assert exported.exit_code == 0, exported.output
    from recapture.hub import load_generator, read_model_file

    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.metadata["trained_on"] == "tiny" and loaded.metadata["step"] == "3"
    weights = load_checkpoint(run).generator
    stored, _ = read_model_file(tmp_path / "g.safetensors")
    assert set(stored) == set(weights)
    for key, value in stored.items():
        torch.testing.assert_close(value.float(), weights[key].half().float(), msg=key)


def test_rng_state_round_trip_keeps_cached_gaussians() -> None:
    import random

    import numpy as np

    from recapture.training.checkpoint import rng_state, set_rng_state

    random.gauss(0, 1), np.random.standard_normal()  # leaves a cached second Gaussian in both generators
    saved = rng_state()
    expected = (random.gauss(0, 1), float(np.random.standard_normal()), torch.rand(3))
    set_rng_state(saved)
    got = (random.gauss(0, 1), float(np.random.standard_normal()), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_resaving_a_step_replaces_it_atomically(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 4, {"w": torch.ones(2)}, {"d": torch.zeros(1)}, {"k": 1}, keep_last=1)
    save_checkpoint(tmp_path, 4, {"w": torch.full((2,), 3.0)}, {"d": torch.zeros(1)}, {"k": 2}, keep_last=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004"]
    assert torch.equal(load_checkpoint(tmp_path).generator["w"], torch.full((2,), 3.0))
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_resume_path_is_taken_literally_and_bad_train_values_are_rejected(tiny_manifest: Path,
                                                                        tmp_path: Path) -> None:
    from recapture.config import ConfigError
    from recapture.training.run import resolve_config

    run = tmp_path / "exp #2"
    run.mkdir()
    (run / "config.yaml").write_text((CONFIGS / "tiny.yaml").read_text())
    assert resolve_config(None, [], run).train.run_dir == str(run)
    for bad in ("train.log_every=0", "train.batch_size=0", "train.ema_decay=1.5"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(CONFIGS / "tiny.yaml", [bad])
