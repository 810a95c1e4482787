"""Speed paths that must not change results: folded reparametrisations, the thread policy, and what a
command imports (no matplotlib behind mediapipe; `--help` stays light)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from recapture.config import load_config
from recapture.hub import load_generator, save_generator
from recapture.models.generator import RecaptureGenerator
from recapture.models.inference import (THREADS_ENV, apply_thread_policy, free_cores, is_folded, load_average,
                                        prepare_for_inference, resolve_threads)
from recapture.models.layout_ops import blob_labels, majority_layout, to_one_hot

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _inputs(config, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    height, width = config.image_size
    layout = to_one_hot(blob_labels(batch, 20, (height, width), generator), 20)
    poses = [torch.rand(batch, 18, height, width, generator=generator) for _ in range(2)]
    return torch.rand(batch, 3, height, width, generator=generator) * 2 - 1, layout, poses[0], poses[1]


def test_folded_generator_gives_the_eval_output_and_has_plain_frozen_weights() -> None:
    torch.manual_seed(0)
    config = load_config(CONFIGS / "tiny.yaml").model
    generator = RecaptureGenerator(config)
    inputs = _inputs(config)
    generator.train()
    generator(*inputs)  # power iterations move u, v away from their initial values
    generator.eval()
    with torch.no_grad():
        expected = generator(*inputs)
    folded = prepare_for_inference(copy.deepcopy(generator))
    with torch.no_grad():
        got = folded(*inputs)
    assert not is_folded(generator) and is_folded(folded) and not folded.training
    assert not any(p.requires_grad for p in folded.parameters())
    assert not any("parametrizations" in name for name, _ in folded.named_parameters())
    assert (got.image - expected.image).abs().max() <= 1e-5
    assert (got.layout_logits - expected.layout_logits).abs().max() <= 1e-5
    with torch.no_grad():  # folding the copy left the original (which shares parametrize's classes) intact
        assert torch.equal(generator(*inputs).image, expected.image)
    # A folded weight is W / sigma(W): its largest singular value is ~1.
    weight = folded.geometric.head.weight.flatten(1)
    assert torch.linalg.matrix_norm(weight, ord=2) == pytest.approx(1.0, abs=0.05)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_legacy_hook_norms_fold_too() -> None:
    torch.manual_seed(1)
    network = nn.Sequential(torch.nn.utils.spectral_norm(nn.Linear(6, 5)), nn.ReLU(),
                            torch.nn.utils.weight_norm(nn.Linear(5, 4)),
                            torch.nn.utils.parametrizations.weight_norm(nn.Linear(4, 3)))
    x = torch.randn(7, 6)
    network.train()
    network(x)
    network.eval()
    with torch.no_grad():
        expected = network(x)
    prepare_for_inference(network)
    assert is_folded(network)
    with torch.no_grad():
        assert (network(x) - expected).abs().max() <= 1e-6


def test_loaded_generators_are_folded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = load_config(CONFIGS / "tiny.yaml").model
    reference = RecaptureGenerator(config)
    path = save_generator(reference.state_dict(), config, tmp_path / "m.safetensors", half=False)
    loaded = load_generator(path).generator
    assert is_folded(loaded) and not loaded.training
    inputs = _inputs(config, batch=1, seed=3)
    with torch.no_grad():
        assert (loaded(*inputs).image - reference.eval()(*inputs).image).abs().max() <= 1e-5


@pytest.mark.parametrize(("affinity", "cpus", "load", "expected"), [
    (2, 2, 0.1, 2), (2, 2, 1.2, 1), (2, 2, 6.0, 1), (4, 16, 2.0, 4), (8, 8, 3.4, 5), (3, 3, None, 3),
])
def test_free_cores(affinity: int, cpus: int, load: float | None, expected: int) -> None:
    assert free_cores(affinity, cpus, load) == expected


def test_thread_policy_order_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(THREADS_ENV, "3")
        assert resolve_threads(2).threads == 2 and resolve_threads(2).source == "--threads"
        assert resolve_threads().threads == 3 and resolve_threads().source == THREADS_ENV
        monkeypatch.delenv(THREADS_ENV)
        assert resolve_threads().source == "free cores" and resolve_threads().threads >= 1
        assert apply_thread_policy(1).threads == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "many")
        with pytest.raises(ValueError, match=THREADS_ENV):
            resolve_threads()
        with pytest.raises(ValueError, match="--threads"):
            resolve_threads(0)
    finally:
        torch.set_num_threads(before)
    (tmp_path / "loadavg").write_text("1.50 0.80 0.30 2/100 42\n")
    assert load_average(tmp_path / "loadavg") == 1.5 and load_average(tmp_path / "nope") is None


#: Runs the command line in-process and fails (exit 3) when a module it must not load got imported.
WRAPPER = """
import runpy, sys
forbidden = sys.argv[1].split(",")
sys.argv = ["recapture"] + sys.argv[2:]
code = 0
try:
    runpy.run_module("recapture", run_name="__main__")
except SystemExit as stop:
    code = stop.code or 0
loaded = [name for name in forbidden if name in sys.modules]
print("LOADED", loaded, "MEDIAPIPE", "mediapipe" in sys.modules)
sys.exit(3 if loaded else code)
"""


def _run_cli(forbidden: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WRAPPER, ",".join(forbidden), *args], capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, THREADS_ENV: "1"})


def test_help_imports_nothing_heavy() -> None:
    done = _run_cli(("torch", "cv2", "mediapipe", "gradio", "av", "matplotlib", "onnxruntime"), "--help")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED []" in done.stdout


def test_folder_mode_evaluate_imports_no_photo_or_app_stack() -> None:
    script = ("import sys\n"
              "from recapture.cli import _runtime\n"
              "from recapture.evaluation import EvaluationOptions, evaluate_folders\n"
              "_runtime(1)\n"
              "print([m for m in ('cv2', 'mediapipe', 'gradio', 'av', 'matplotlib', 'onnxruntime',\n"
              "                   'recapture.pipelines.recapture', 'recapture.evaluation.generate') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.slow
def test_photo_edit_never_imports_matplotlib(tmp_path: Path) -> None:
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((420, 420)))
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    done = _run_cli(("matplotlib", "gradio"), "edit", str(tmp_path / "photo.jpg"), "--pose", "hand_up",
                    "--out", str(tmp_path / "out.png"), "--model", "synthhumans")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LOADED [] MEDIAPIPE True" in done.stdout  # mediapipe ran, matplotlib never came in
    assert Image.open(tmp_path / "out.png").size == (420, 420)


def test_network_commands_take_threads_and_edit_evaluate_take_a_backend() -> None:
    from typer.testing import CliRunner

    from recapture.cli import app

    for command in ("edit", "video", "evaluate", "serve"):
        shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "--threads" in shown, command
        assert ("--backend" in shown) == (command in ("edit", "evaluate")), command


@pytest.mark.parametrize("size,small", [((64, 44), (32, 22)), ((96, 66), (32, 22)), ((70, 50), (32, 22)),
                                        ((33, 29), (16, 11))])
def test_majority_layout_counts_equal_area_pooling_argmax(size: tuple[int, int], small: tuple[int, int]) -> None:
    """The counting path (whole multiples) and the pooling path both equal the naive definition, ties included."""
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (2, *size), generator=generator) * (torch.rand(2, *size, generator=generator) < 0.7)
    naive = to_one_hot(F.interpolate(to_one_hot(labels, 20), size=small, mode="area").argmax(dim=1), 20)
    found = majority_layout(labels, 20, small)
    assert found.shape == (2, 20, *small) and torch.equal(found, naive)
