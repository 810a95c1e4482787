"""Tests of the metrics pipeline (recapture.evaluation): references, invariances, files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn as nn
from PIL import Image
from skimage.draw import disk, polygon
from skimage.metrics import structural_similarity
from skimage.morphology import dilation, erosion
from typer.testing import CliRunner

from recapture.cli import app
from recapture.data.formats import FormatError, pair_name, write_annotations, write_pairs
from recapture.evaluation import (EvaluationOptions, EvaluationReport, MatchingError, MetricAccumulator,
                                  MetricNetworks, Panels, WeightsUnavailable, evaluate_folders, l1_distance,
                                  literature_pose_mask, load_is_inception, load_lpips, match_by_name, match_pairs,
                                  psnr, read_json, report_from_dict, report_to_dict, ssim, to_markdown, write_json)
from recapture.evaluation.networks import INCEPTION_WEIGHTS_NAME
from recapture.evaluation.ssim import MASK_LIMBS

CORE_KEYS = ("ssim", "masked_ssim", "is", "masked_is", "fid", "kid", "inception_distance", "lpips", "l1", "psnr")


@pytest.fixture(autouse=True)
def _private_feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPTURE_CACHE_DIR", str(tmp_path / "feature-cache"))


def _pixel_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folder scoring without networks (the matching and reading tests need no Inception)."""
    import recapture.evaluation.folders as folders

    monkeypatch.setattr(folders, "build_networks", lambda options, pool=None: MetricNetworks())


def _skimage_ssim(generated: np.ndarray, real: np.ndarray) -> float:
    """The literature's call (PATN getMetrics): (H, W, 3) arrays on 0..255."""
    return structural_similarity(real, generated, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 channel_axis=-1, data_range=generated.max() - generated.min())


def _chw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def _keypoints(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kp = np.stack([rng.integers(4, height - 4, 18), rng.integers(3, width - 3, 18)], axis=1)
    kp[rng.random(18) < 0.2] = -1
    return kp


class TinyExtractor(nn.Module):
    """A random conv net standing in for Inception: 6-d pool features (``stages``: its conv map)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, stride=2)
        self.fc = nn.Linear(6, 5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8
        return torch.tanh(self.conv(images.float() / 127.5 - 1)).mean(dim=(2, 3))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self(images)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self(images)) * 4

    def stages(self, images: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        return {name: self.conv(images.float() / 127.5 - 1) for name in names}


def _tiny(**kwargs: object) -> MetricNetworks:
    tiny = TinyExtractor()
    return MetricNetworks(features=tiny, logits=tiny.logits, **kwargs)  # type: ignore[arg-type]


def _fixed_logits(make_logits):  # noqa: ANN001, ANN202 - test helper
    """Networks whose IS logits are ``make_logits(batch)``."""
    return MetricNetworks(logits=lambda images: make_logits(len(images)))


@pytest.mark.parametrize("size", [(11, 11), (40, 30), (64, 33)])
def test_ssim_equals_skimage(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    generated = rng.integers(0, 256, (4, *size, 3)).astype(np.float64)
    generated[1] = generated[1] * 0.2 + 40  # a low-contrast image: a small data range
    real = np.clip(generated + rng.normal(0, 25, generated.shape), 0, 255).round()
    real[2] = rng.integers(0, 256, real[2].shape)
    ours = ssim(_chw(generated), _chw(real)).numpy()
    reference = [_skimage_ssim(generated[i], real[i]) for i in range(4)]
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ssim(_chw(real), _chw(real)).numpy(), 1.0, atol=1e-12)


def test_ssim_of_constant_image_uses_full_range() -> None:
    real = np.random.default_rng(1).integers(0, 256, (1, 20, 20, 3)).astype(np.float64)
    generated = np.full_like(real, 7.0)
    expected = structural_similarity(real[0], generated[0], gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=-1, data_range=255.0)
    assert float(ssim(_chw(generated), _chw(real))[0]) == pytest.approx(expected, abs=1e-10)
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.zeros(1, 3, 10, 30), torch.zeros(1, 3, 10, 30))


def test_l1_and_psnr_against_numpy() -> None:
    rng = np.random.default_rng(2)
    g, r = rng.integers(0, 256, (2, 3, 16, 12, 3)).astype(np.float64)
    mse = ((g / 255 - r / 255) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(psnr(_chw(g), _chw(r)).numpy(), 10 * np.log10(1 / mse), rtol=1e-12)
    np.testing.assert_allclose(l1_distance(_chw(g), _chw(r)).numpy(), np.abs(g - r).mean(axis=(1, 2, 3)) / 255)
    assert float(psnr(_chw(g), _chw(g))[0]) == pytest.approx(100.0)
    mask = torch.zeros(3, 1, 16, 12)
    mask[:, :, 2:9, 3:7] = 1
    masked = np.abs(g - r)[:, 2:9, 3:7].mean(axis=(1, 2, 3)) / 255
    np.testing.assert_allclose(l1_distance(_chw(g), _chw(r), mask).numpy(), masked, rtol=1e-12)


def _reference_mask(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Deformable-GAN's produce_ma_mask (point_radius 4, closing with a 5x5 square), rewritten here."""
    mask = np.zeros(size, dtype=bool)
    present = (kp != -1).all(axis=1)
    for a, b in MASK_LIMBS:
        if present[a] and present[b] and not np.array_equal(kp[a], kp[b]):
            normal = np.array([-(kp[a] - kp[b])[1], (kp[a] - kp[b])[0]], dtype=float)
            normal = 4 * normal / np.linalg.norm(normal)
            corners = np.array([kp[a] + normal, kp[a] - normal, kp[b] - normal, kp[b] + normal])
            mask[polygon(corners[:, 0], corners[:, 1], shape=size)] = True
    for joint in kp[present]:
        mask[disk((joint[0], joint[1]), 4, shape=size)] = True
    return erosion(dilation(mask, np.ones((5, 5), bool)), np.ones((5, 5), bool))


def test_literature_mask_matches_reference_up_to_rasterisation() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        kp = _keypoints(rng, 128, 64)
        ours = literature_pose_mask(kp, (128, 64)).numpy() > 0.5
        reference = _reference_mask(kp, (128, 64))
        iou = (ours & reference).sum() / max(1, (ours | reference).sum())
        assert iou > 0.9, iou
    assert literature_pose_mask(np.full((18, 2), -1), (32, 16)).sum() == 0


def test_masked_metrics_ignore_pixels_outside_mask() -> None:
    rng = np.random.default_rng(4)
    size = (48, 32)
    kp = np.stack([_keypoints(rng, *size) for _ in range(3)])
    masks = torch.stack([literature_pose_mask(k, size) for k in kp]).bool()
    generated = torch.from_numpy(rng.integers(0, 256, (3, 3, *size), dtype=np.uint8))
    real = torch.from_numpy(rng.integers(0, 256, (3, 3, *size), dtype=np.uint8))
    outside = (~masks).unsqueeze(1).expand_as(generated)
    changed = generated.clone()
    changed[outside] = torch.from_numpy(rng.integers(0, 256, int(outside.sum()), dtype=np.uint8))
    reports = []
    for images in (generated, changed):
        accumulator = MetricAccumulator(_tiny(), is_splits=1)
        accumulator.update(images, real, target_keypoints=kp)
        reports.append(accumulator.compute())
    before, after = reports
    assert before.masked_count == 3
    for key in ("masked_ssim", "masked_l1", "masked_is"):
        assert after.value(key) == pytest.approx(before.value(key), abs=1e-12), key
    for key in ("ssim", "l1", "psnr", "is"):
        assert abs(after.value(key) - before.value(key)) > 1e-6, key


def test_float_inputs_score_like_uint8_and_bad_ranges_fail() -> None:
    rng = np.random.default_rng(5)
    g = torch.from_numpy(rng.integers(0, 256, (2, 3, 20, 16), dtype=np.uint8))
    r = torch.from_numpy(rng.integers(0, 256, (2, 3, 20, 16), dtype=np.uint8))
    first, second = MetricAccumulator(), MetricAccumulator()
    first.update(g, r)
    second.update(g.float() / 255, r.float() / 255)
    assert report_to_dict(first.compute()) == report_to_dict(second.compute())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MetricAccumulator().update(g.float() / 127.5 - 1, r.float() / 255)
    accumulator = MetricAccumulator()
    accumulator.update(g, r, target_keypoints=np.full((2, 18, 2), 5))
    with pytest.raises(ValueError, match="every update"):
        accumulator.update(g, r)


def _fid_reference(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_fid_is_zero_on_the_same_set_and_grows_with_noise() -> None:
    rng = np.random.default_rng(6)
    coarse = torch.from_numpy(rng.integers(0, 256, (24, 3, 3, 2)).astype(np.float32))
    real = nn.functional.interpolate(coarse, size=(24, 16), mode="bilinear").round().to(torch.uint8)
    fids = []
    for noise in (0, 10, 30, 90):
        generated = (real.float() + torch.from_numpy(rng.normal(0, noise, real.shape))).clamp(0, 255).round()
        accumulator = MetricAccumulator(_tiny())
        for start in (0, 12):
            accumulator.update(generated[start:start + 12].to(torch.uint8), real[start:start + 12])
        fids.append(accumulator.compute().fid)
    assert abs(fids[0]) < 1e-10
    assert 1e-6 < fids[1] < fids[2] < fids[3]
    extractor = TinyExtractor()
    noisy = (real.float() + 60 * torch.from_numpy(rng.standard_normal(real.shape))).clamp(0, 255).to(torch.uint8)
    accumulator = MetricAccumulator(MetricNetworks(features=extractor))
    accumulator.update(noisy, real)
    expected = _fid_reference(extractor(noisy).double().detach().numpy(), extractor(real).double().detach().numpy())
    assert accumulator.compute().fid == pytest.approx(expected, rel=1e-6)


def test_fid_counts_a_repeated_target_once_and_uses_a_separate_reference() -> None:
    rng = np.random.default_rng(7)
    real = torch.from_numpy(rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    generated = torch.from_numpy(rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    with_ids = MetricAccumulator(_tiny())
    with_ids.update(generated, real, real_ids=["a", "b", "c", "a", "b", "c"])
    assert sum(len(f) for f in with_ids.features["real"]) == 3
    separate = MetricAccumulator(_tiny(), fid_on_targets=False)
    separate.update(generated, real)
    separate.add_fid_reference(generated)
    assert abs(separate.compute().fid) < 1e-6
    with pytest.raises(ValueError, match="fid_on_targets"):
        with_ids.add_fid_reference(real)


def test_inception_score_of_identical_and_of_confident_balanced_predictions() -> None:
    images = torch.zeros(20, 3, 16, 16, dtype=torch.uint8)
    same = MetricAccumulator(_fixed_logits(lambda b: torch.tensor([0.3, -1.0, 2.0, 0.5]).repeat(b, 1)))
    same.update(images, images)
    assert same.compute().inception_score == pytest.approx(1.0, abs=1e-12)
    confident = MetricAccumulator(_fixed_logits(lambda b: 60.0 * torch.eye(4).repeat(b // 4, 1)), is_splits=1)
    confident.update(images, images)
    assert confident.compute().inception_score == pytest.approx(4.0, rel=1e-9)


def test_report_round_trip_and_validation(tmp_path: Path) -> None:
    images = torch.from_numpy(np.random.default_rng(8).integers(0, 256, (3, 3, 16, 16), dtype=np.uint8))
    accumulator = MetricAccumulator(_tiny())
    accumulator.update(images, images.flip(0), target_keypoints=np.full((3, 18, 2), 8))
    report = accumulator.compute()
    assert report.lpips is None and "lpips" in report.unavailable
    write_json(report, tmp_path / "r.json")
    assert read_json(tmp_path / "r.json") == report
    assert report_from_dict(report_to_dict(report)) == report
    assert "| SSIM ↑ |" in to_markdown(report) and "n/a [1]" in to_markdown(report)
    with pytest.raises(ValueError, match="without a reason"):
        EvaluationReport(count=1, ssim=0.5)
    reasons = {key: "r" for key in CORE_KEYS if key != "ssim"}
    with pytest.raises(ValueError, match="not finite"):
        EvaluationReport(count=1, ssim=float("nan"), unavailable=reasons)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.mark.parametrize("file_name", ["a___b.png", "a.jpg___b.jpg_vis.jpg", "a_2_b_vis.png",
                                       "a.jpg_b.jpg.png", "a___b_vis.png"])
def test_pair_name_conventions(tmp_path: Path, file_name: str) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    _save(tmp_path / "gen" / file_name, image)
    _save(tmp_path / "gen" / "a_2_c_vis.png", image)
    _save(tmp_path / "real" / "b.jpg", image)
    matched = match_pairs(tmp_path / "gen", tmp_path / "real", [("a.jpg", "b.jpg")]).pairs
    assert [(m.generated.name, m.real.name, m.target_name) for m in matched] == [(file_name, "b.jpg", "b.jpg")]


def test_matching_by_name_stem_and_pair_name_and_errors(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    for name in ("x.png", "y.png", "p_2_z_vis.png"):
        _save(tmp_path / "gen" / name, image)
    for name in ("x.png", "y.jpg", "z.jpg"):
        _save(tmp_path / "real" / name, image)
    matched = match_by_name(tmp_path / "gen", tmp_path / "real").pairs
    assert [(m.generated.name, m.real.name) for m in matched] == [("p_2_z_vis.png", "z.jpg"), ("x.png", "x.png"),
                                                                   ("y.png", "y.jpg")]
    _save(tmp_path / "gen" / "orphan.png", image)
    assert match_by_name(tmp_path / "gen", tmp_path / "real").counts.unmatched == ("orphan.png",)
    missing = match_pairs(tmp_path / "gen", tmp_path / "real", [("q.jpg", "x.png")])
    assert missing.counts.missing == ("q.jpg->x.png",) and not missing.pairs
    with pytest.raises(MatchingError, match="q.jpg->x.png"):
        missing.check_strict()
    _save(tmp_path / "gen" / "p___z.png", image)
    with pytest.raises(MatchingError, match="several files"):
        match_pairs(tmp_path / "gen", tmp_path / "real", [("p.jpg", "z.jpg")])


def _write_dataset(root: Path, strip: bool = False, scale: int = 1) -> tuple[Path, Path, Path, Path]:
    """4 pairs of 40x24 images (targets repeat once), annotations and pairs CSVs."""
    rng = np.random.default_rng(9)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"img_{i}.jpg" for i in range(4)]
    pairs = [(names[0], names[1]), (names[1], names[2]), (names[2], names[3]), (names[3], names[1])]
    write_annotations(root / "ann.csv", names, np.stack([_keypoints(rng, 40, 24) for _ in names]))
    write_pairs(root / "pairs.csv", pairs)
    smooth = [Image.fromarray(rng.integers(0, 256, (5, 3, 3), dtype=np.uint8)).resize((24, 40), Image.BICUBIC)
              for _ in names]
    real = {n: np.asarray(image) for n, image in zip(names, smooth)}
    for name, image in real.items():
        _save(root / "real" / name.replace(".jpg", ".png"), image)
    for source, target in pairs:
        image = np.clip(real[target].astype(int) + rng.integers(-5, 6, (40, 24, 3)), 0, 255).astype(np.uint8)
        if strip:
            image = np.concatenate([real[source], np.zeros_like(image), image], axis=1)
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
        _save(root / "gen" / pair_name(source, target), image)
    return root / "gen", root / "real", root / "pairs.csv", root / "ann.csv"


def test_cli_writes_every_metric_with_reasons_when_weights_are_missing(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    gen, real, pairs, ann = _write_dataset(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--generated", str(gen), "--real", str(real), "--pairs",
                                      str(pairs), "--annotations", str(ann), "--json", str(tmp_path / "m.json"),
                                      "--markdown", str(tmp_path / "m.md")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "m.json").read_text())
    assert set(CORE_KEYS) <= set(data) and data["count"] == 4 and data["masked_count"] == 4
    for key in ("is", "masked_is"):
        assert data[key] is None and INCEPTION_WEIGHTS_NAME in data["unavailable"][key]
    assert isinstance(data["fid"], float) and isinstance(data["kid"], float) and "fid" not in data["unavailable"]
    assert data["inception_distance"] is None and "75x75" in data["unavailable"]["inception_distance"]
    assert data["lpips"] is None and "alexnet-owt-7be5be79.pth" in data["unavailable"]["lpips"]
    for key in ("ssim", "masked_ssim", "l1", "psnr"):
        assert isinstance(data[key], float)
    assert 0.3 < data["ssim"] < 1 and "Masked SSIM" in (tmp_path / "m.md").read_text()


def test_cli_names_a_corrupt_image_and_a_missing_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pixel_only(monkeypatch)
    gen, real, pairs, ann = _write_dataset(tmp_path)
    (real / "img_2.png").write_bytes(b"not a png")
    args = ["evaluate", "--generated", str(gen), "--real", str(real), "--pairs", str(pairs)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "img_2.png" in result.output
    (gen / pair_name("img_0.jpg", "img_1.jpg")).unlink()
    result = CliRunner().invoke(app, args + ["--strict"])
    assert result.exit_code == 1 and "img_0.jpg->img_1.jpg" in result.output


def test_strips_and_resized_outputs_score_like_plain_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pixel_only(monkeypatch)
    plain = evaluate_folders(*_write_dataset(tmp_path / "plain"))
    strip = _write_dataset(tmp_path / "strip", strip=True)
    cropped = evaluate_folders(*strip, options=EvaluationOptions(panels=Panels(-1, 3)))
    assert cropped.ssim == pytest.approx(plain.ssim, abs=1e-12)
    assert cropped.masked_ssim == pytest.approx(plain.masked_ssim, abs=1e-12)
    resized = evaluate_folders(*_write_dataset(tmp_path / "big", scale=2))
    assert resized.ssim == pytest.approx(plain.ssim, abs=0.05) and resized.l1 == pytest.approx(plain.l1, abs=0.01)
    odd = strip[0] / pair_name("img_1.jpg", "img_2.jpg")
    _save(odd, np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(FormatError, match=f"{odd.name}.*panels"):
        evaluate_folders(*strip, options=EvaluationOptions(panels=Panels(3, 3)))


def _forbid_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)


@pytest.mark.slow
def test_inception_loads_from_a_local_file_without_downloading(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    with monkeypatch.context() as patch:  # build a randomly initialised torch-fidelity Inception
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        random_net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(random_net.state_dict(), tmp_path / INCEPTION_WEIGHTS_NAME)
    _forbid_downloads(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable, match=INCEPTION_WEIGHTS_NAME):
        load_is_inception()
    loaded = load_is_inception(tmp_path / INCEPTION_WEIGHTS_NAME)
    assert all(torch.equal(v, loaded.net.state_dict()[k]) for k, v in random_net.state_dict().items())
    assert loaded(torch.zeros(1, 3, 40, 24, dtype=torch.uint8)).shape == (1, 1008)


def test_folders_use_the_loaded_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recapture.evaluation.options as options

    tiny = TinyExtractor()
    monkeypatch.setattr(options, "load_inception", lambda device: tiny)
    monkeypatch.setattr(options, "load_is_inception", lambda weights, device: tiny.logits)
    monkeypatch.setattr(options, "load_lpips", lambda weights, device: lambda g, r: (g - r).abs().mean((1, 2, 3)))
    monkeypatch.setattr(options, "resolve_weights", lambda explicit, *args: explicit)
    gen, real, pairs, ann = _write_dataset(tmp_path)
    report = evaluate_folders(gen, real, pairs, ann, EvaluationOptions(batch_size=3, fid_reference=real))
    assert set(report.unavailable) == {"inception_distance"} and report.count == 4 and report.masked_count == 4
    assert report.lpips == pytest.approx(2 * report.l1, rel=1e-6)
    for value in (report.inception_score, report.masked_inception_score, report.fid, report.kid):
        assert value is not None and np.isfinite(value)
    assert "all images of" in report.settings.fid_reference


@pytest.mark.slow
def test_lpips_matches_torchmetrics_with_the_same_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchmetrics.functional.image.lpips import _LPIPS

    _forbid_downloads(monkeypatch)
    torch.manual_seed(0)
    reference = _LPIPS(pretrained=True, net="alex", pnet_rand=True).eval()
    state = {f"features.{key.split('.', 1)[1]}": value
             for key, value in reference.net.state_dict().items() if key.startswith("slice")}
    torch.save(state, tmp_path / "alexnet.pth")
    ours = load_lpips(tmp_path / "alexnet.pth")
    x, y = torch.rand(2, 2, 3, 64, 48) * 2 - 1
    np.testing.assert_allclose(ours(x, y).numpy(), reference(x, y).flatten().detach().numpy(), rtol=1e-4)
    assert float(ours(x, x).abs().max()) == 0.0
    with pytest.raises(ValueError, match="features.0.weight"):
        torch.save({"features.3.weight": torch.zeros(1)}, tmp_path / "bad.pth")
        load_lpips(tmp_path / "bad.pth")
