"""The torch-free ONNX Runtime photo path: the correspondence export against eager torch (tiny config, two
output sizes), the parser export against CcpParser, the cache, and a whole ``recapture edit --backend
onnxruntime`` in a subprocess that never imports torch and matches the torch backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime")

from recapture.config import load_config  # noqa: E402
from recapture.hub import save_generator  # noqa: E402
from recapture.models.correspondence import prepare_inputs, repose  # noqa: E402
from recapture.models.generator import RecaptureGenerator  # noqa: E402
from recapture.pipelines.onnx_backend import export_onnx  # noqa: E402
from recapture.pipelines.onnx_photo import (CORRESPONDENCE_INPUTS, OnnxCorrespondence, OnnxRecapturer,  # noqa: E402
                                             OnnxUnavailable, cached)

sys.path.insert(0, str(Path(__file__).parent))
from test_layout_prior import mannequin_keypoints, mannequin_layout, moved_mannequin  # noqa: E402
from test_speed_paths import WRAPPER  # noqa: E402
from conftest import random_tiny_model  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def tiny_correspondence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny correspondence generator with a random appearance network and its ONNX export."""
    weights = random_tiny_model(tmp_path_factory.mktemp("correspondence"), "appearance", 0.1)
    return weights, export_onnx(weights, weights.parent / "tiny.onnx").path


def _pair(size: tuple[int, int], seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    scale = size[0] / 64
    labels, source, target = moved_mannequin(size, scale, 3 * scale, rng)
    image = (rng.random((*size, 3)) * 255).astype(np.uint8)
    return image, labels, source, target, mannequin_layout(target, size, scale)


@pytest.mark.parametrize("size", [(64, 48), (96, 72)])  # the full-resolution axes of the graph are dynamic
def test_correspondence_export_matches_eager_torch(tiny_correspondence: tuple[Path, Path],
                                                   size: tuple[int, int]) -> None:
    from recapture.hub import load_generator

    weights, path = tiny_correspondence
    model = load_generator(weights).generator.appearance
    runtime = OnnxCorrespondence(path, threads=1)
    assert runtime.twins is model.config.twin_limbs is True  # the NumPy prior is told by the export's metadata
    assert runtime.snap_reach == model.config.snap_reach > 0  # as is the snap of its samples to their own parts
    image, labels, source, target, target_labels = _pair(size, 1)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    as_long = [torch.from_numpy(v.astype(np.int64))[None] for v in (labels, target_labels)]
    with torch.no_grad():
        expected = repose(model, tensor, as_long[0], source[None], target[None], as_long[1])
        inputs = prepare_inputs(model.config, as_long[0], source[None], target[None], as_long[1])
    small = F.interpolate(tensor, size=model.config.internal_size, mode="area")
    same = (tensor, small, inputs.source_layout, inputs.source_pose, inputs.target_layout, inputs.target_pose,
            inputs.prior.grid, inputs.prior.covered, inputs.prior.full, inputs.prior.turned)
    got_image, got_flow = runtime.session.run(["image", "flow"], {n: t.numpy() for n, t in
                                                                  zip(CORRESPONDENCE_INPUTS, same)})
    assert got_image.shape == (1, 3, *size)
    assert np.abs(got_image - expected.image.numpy()).max() < 1e-3  # the graph, on the same inputs
    assert np.abs(got_flow - expected.flow.numpy()).max() < 1e-3
    feeds = runtime.feeds(image, labels, source, target, target_labels)  # the NumPy inputs (prior, pooling, ...)
    for name, tensor_input in zip(CORRESPONDENCE_INPUTS, same):
        assert np.abs(feeds[name] - tensor_input.numpy()).max() < 1e-4, name
    numpy_image = runtime.session.run(["image"], feeds)[0]
    assert np.abs(numpy_image - expected.image.numpy()).max() < 1e-3
    identity = repose(model, tensor, as_long[0], source[None], source[None], as_long[0]).image.detach().numpy()
    assert np.abs(identity - expected.image.numpy()).max() > 0.1  # the target pose matters


def test_stand_ins_are_the_same_in_both_backends(tiny_correspondence: tuple[Path, Path]) -> None:
    from recapture.body.parts import get_label_set
    from recapture.hub import load_generator

    weights, path = tiny_correspondence
    model = load_generator(weights).generator.appearance
    assert model.config.stand_ins
    lip20 = get_label_set("lip20")
    image, labels, source, target, target_labels = _pair((64, 48), 3)
    legs = np.isin(target_labels, [lip20.index("left_leg"), lip20.index("right_leg")])
    dressed = np.where(legs, lip20.index("dress"), target_labels).astype(target_labels.dtype)  # the source has none
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    as_long = [torch.from_numpy(v.astype(np.int64))[None] for v in (labels, dressed)]
    with torch.no_grad():
        expected = repose(model, tensor, as_long[0], source[None], target[None], as_long[1])
    runtime = OnnxCorrespondence(path, threads=1)
    got = runtime.session.run(["image"], runtime.feeds(image, labels, source, target, dressed))[0]
    assert np.abs(got - expected.image.numpy()).max() < 1e-3
    assert expected.invented[0, 0][torch.from_numpy(legs)].mean() > 0.5  # the dress over the legs is a stand-in


def test_the_back_of_the_head_rule_is_the_same_in_both_backends(tiny_correspondence: tuple[Path, Path]) -> None:
    """A target seen from behind (the source's joints with left and right swapped, the head all hair): the export's
    metadata turns ``back_of_head`` on, the NumPy full-size grid equals torch's, and the rule moved samples; the
    back-of-head fill paints the place of the face in both backends alike."""
    import dataclasses

    from recapture.body.keypoints import FLIP_PERMUTATION
    from recapture.body.parts import LIP20
    from recapture.hub import load_generator

    weights, path = tiny_correspondence
    model = load_generator(weights).generator.appearance
    runtime = OnnxCorrespondence(path, threads=1)
    assert runtime.back_of_head is model.config.back_of_head is True
    image, labels, source, _, _ = _pair((64, 48), 3)
    target = source[list(FLIP_PERMUTATION)]  # the same place, the person turned round: a back view
    behind = mannequin_layout(target, (64, 48))
    behind[behind == LIP20.index("face")] = LIP20.index("hair")
    as_long = [torch.from_numpy(v.astype(np.int64))[None] for v in (labels, behind)]
    grids = {flag: prepare_inputs(dataclasses.replace(model.config, back_of_head=flag), as_long[0], source[None],
                                  target[None], as_long[1]).prior.full[0].numpy() for flag in (False, True)}
    assert np.abs(grids[True] - grids[False]).max() > 0.05  # the face's samples moved into the hair
    feeds = runtime.feeds(image, labels, source, target, behind)
    assert np.abs(feeds["full_grid"][0] - grids[True]).max() < 1e-5
    assert feeds["turned"].tolist() == [1.0] and model.config.back_of_head_fill  # and the back-of-head fill
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = repose(model, tensor, as_long[0], source[None], target[None], as_long[1])
    assert np.abs(runtime.session.run(["image"], feeds)[0] - expected.image.numpy()).max() < 1e-3
    assert expected.invented[0, 0][torch.from_numpy(labels == LIP20.index("face"))].mean() > 0.5  # ~0.02 without


def test_onnx_recapturer_renders_like_the_torch_recapturer(tiny_correspondence: tuple[Path, Path]) -> None:
    from recapture.pipelines.recapture import Recapturer, SourceInput

    weights, path = tiny_correspondence
    torch_side, onnx_side = Recapturer.from_pretrained(weights), OnnxRecapturer(OnnxCorrespondence(path))
    image, labels, source, target, _ = _pair((32, 24), 2)
    given = SourceInput(image=image, keypoints=source, layout=labels)
    layouts = [r.predict_layout(given, target, method="warp") for r in (torch_side, onnx_side)]
    assert np.array_equal(layouts[0].target_layout, layouts[1].target_layout)
    small = [r.render(given, target, layouts[0].target_layout) for r in (torch_side, onnx_side)]
    assert np.abs(small[0].astype(int) - small[1]).max() <= 1
    full = np.repeat(np.repeat(image, 3, axis=0), 3, axis=1)
    big = [r.repose_full(given, target, layouts[0].target_layout, full) for r in (torch_side, onnx_side)]
    assert big[1].image.shape == (96, 72, 3) and np.abs(big[0].image.astype(int) - big[1].image).max() <= 1
    assert np.abs(big[0].flow - big[1].flow).max() < 0.05  # pixels
    # The source's own layout at the full size (a photo's parse), finer than the model frame's enlarged: used by both
    fine = mannequin_layout(source * 3 + 1, (96, 72), 3.0)
    finer = [r.repose_full(given, target, layouts[0].target_layout, full, fine) for r in (torch_side, onnx_side)]
    assert np.abs(finer[0].image.astype(int) - finer[1].image).max() <= 1
    assert np.abs(finer[0].flow - big[0].flow).max() > 0.5  # the fine layout moved some samples
    for runner in (torch_side, onnx_side):
        with pytest.raises(ValueError, match=r"source_full_layout \(32, 24\) does not match source_full \(96, 72\)"):
            runner.repose_full(given, target, layouts[0].target_layout, full, labels)
    with pytest.raises(OnnxUnavailable, match="--layout prior"):
        onnx_side.predict_layout(given, target)
    with pytest.raises(OnnxUnavailable, match="torch backend"):
        onnx_side.attention(None, (0, 0))


def test_cache_names_follow_the_weights_and_export_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPTURE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"one")
    calls: list[Path] = []

    def export(out: Path) -> None:
        calls.append(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"onnx")

    first = cached(weights, "generator", export)
    assert cached(weights, "generator", export) == first and len(calls) == 1
    assert first.parent == tmp_path / "cache" / "onnx" and first.name.startswith("generator-")
    weights.write_bytes(b"two")  # retrained weights: a new file
    assert cached(weights, "generator", export) != first and len(calls) == 2


def _request(model: Path, **changes: object) -> object:
    from recapture.pipelines.edit import EditRequest

    # A given source layout: the parser (whose export is the slow test's) is not needed.
    return EditRequest(source=Path("in.jpg"), pose="hand_up", out=Path("out.jpg"), model=str(model),
                       source_layout=Path("layout.png"), **changes)  # type: ignore[arg-type]


def test_edit_defaults_to_onnxruntime_and_falls_back_to_torch(tiny_correspondence: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import recapture.pipelines.onnx_backend as onnx_backend
    from recapture.pipelines.edit import choose_backend

    monkeypatch.setenv("RECAPTURE_CACHE", str(tmp_path / "cache"))
    weights = tiny_correspondence[0]
    first = choose_backend(_request(weights))  # the default: made into the cache, then onnxruntime
    assert first.name == "onnxruntime" and isinstance(first.recapturer, OnnxRecapturer) and not first.note, first.note
    assert [p.parent for p in first.made] == [tmp_path / "cache" / "onnx"] and first.made[0].is_file()
    again = choose_backend(_request(weights), "auto")
    assert again.name == "onnxruntime" and again.made == ()  # cached: nothing made, no torch needed
    forced = choose_backend(_request(weights), "torch")
    assert forced.name == "torch" and forced.recapturer is None and not forced.note
    for changes, reason in (({"attention": (1, 1)}, "--attention"), ({"method": "warp"}, "--method warp"),
                            ({"layout": "network"}, "geometric network runs on torch only")):  # no prior network
        chosen = choose_backend(_request(weights, **changes))
        assert chosen.name == "torch" and reason in chosen.note
    generative = tmp_path / "generative.safetensors"
    config = load_config(CONFIGS / "tiny.yaml").model
    save_generator(RecaptureGenerator(config).state_dict(), config, generative, half=False)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    for model, reason in ((generative, "not a correspondence model"), (junk, "not a bundled name or a readable")):
        chosen = choose_backend(_request(model))
        assert chosen.name == "torch" and reason in chosen.note, chosen.note
    with monkeypatch.context() as patch:  # onnxruntime not installed: its import fails
        patch.setitem(sys.modules, "onnxruntime", None)
        chosen = choose_backend(_request(weights))
        assert chosen.name == "torch" and "onnxruntime is not installed" in chosen.note

    def broken_export(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setenv("RECAPTURE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(onnx_backend, "export_onnx", broken_export)
    chosen = choose_backend(_request(weights))  # a model file that cannot be exported: torch
    assert chosen.name == "torch" and "exporter exploded" in chosen.note
    with pytest.raises(RuntimeError, match="exploded"):  # asked for by name: the error, no fallback
        choose_backend(_request(weights), "onnxruntime")
    with pytest.raises(ValueError, match="--backend must be one of"):
        choose_backend(_request(weights), "tensorflow")


def test_parser_upsampling_and_aligns_match_grid_sample() -> None:
    """The parser export's stand-ins for ``grid_sample`` (the head's aligns as matrix products; the logits'
    upsampling and softmax in NumPy) against the torch functions, on random maps with a few huge values."""
    from recapture.models.parser import INPUT_SIZE, align, grid_size, upsample_logits
    from recapture.pipelines.onnx_parser import crop_softmax, matmul_align

    generator = torch.Generator().manual_seed(0)
    for source, target in (("mixed_7", "mixed_2"), ("mixed_2", "conv_4"), ("input", "mixed_2"), ("input", "conv_4"),
                           ("input", "mixed_7")):
        feature = torch.randn(2, 3, *grid_size(source), generator=generator)
        expected = align(feature, source, target)
        assert expected.shape[-2:] == grid_size(target)
        assert torch.allclose(matmul_align(feature, source, target), expected, atol=1e-4)
    logits = torch.randn(1, 20, *grid_size("conv_4"), generator=generator) * 4
    logits[0, 3, 10, 5] = 60.0  # one part far ahead: the softmax must not overflow
    expected = torch.softmax(upsample_logits(logits), dim=1)[0].permute(1, 2, 0).numpy()
    got = crop_softmax(logits[0].numpy(), INPUT_SIZE)
    assert got.shape == (*INPUT_SIZE, 20) and np.abs(got - expected).max() < 1e-4  # torch: float32 coordinates
    assert np.allclose(got.sum(axis=-1), 1.0, atol=1e-5)


def test_flip_softmax_equals_the_two_views_averaged() -> None:
    """flip_softmax (the mirror undone on the logits, two taps per pixel, optionally two threads) equals the
    crop's and the mirror's crop_softmax averaged, the mirror's mirrored back with its parts swapped."""
    from recapture.body.parts import LIP20
    from recapture.models.parser import INPUT_SIZE, grid_size
    from recapture.pipelines.onnx_parser import crop_softmax, flip_softmax

    logits = np.random.default_rng(1).normal(size=(2, 20, *grid_size("conv_4"))).astype(np.float32) * 4
    logits[1, 5, 20, 3] = 70.0
    mirrored = crop_softmax(logits[1], INPUT_SIZE)[:, ::-1][..., list(LIP20.flip_permutation)]
    expected = (crop_softmax(logits[0], INPUT_SIZE) + mirrored) / 2
    for threads in (1, 2):
        got = flip_softmax(logits, INPUT_SIZE, LIP20.flip_permutation, threads)
        assert got.flags["C_CONTIGUOUS"] and got.shape == (*INPUT_SIZE, 20)
        assert np.abs(got - expected).max() < 1e-6
    swapped = flip_softmax(logits[::-1].copy(), INPUT_SIZE, LIP20.flip_permutation)  # the mirror's own parse
    np.testing.assert_allclose(swapped, got[:, ::-1][..., list(LIP20.flip_permutation)], atol=1e-6)


@pytest.mark.slow
def test_parser_export_matches_the_torch_parser(tmp_path: Path) -> None:
    from recapture.hub import bundled_models
    from recapture.models.inception import InceptionUnavailable
    from recapture.pipelines.human_parsing import CcpParser
    from recapture.pipelines.onnx_parser import OnnxCcpParser, export_parser_onnx

    if "parser-ccp" not in bundled_models("parser"):
        pytest.skip("no bundled parser-ccp")
    try:
        reference = CcpParser()
    except InceptionUnavailable as err:
        pytest.skip(str(err))
    path = export_parser_onnx("parser-ccp", tmp_path / "parser.onnx")
    runtime = OnnxCcpParser(path=path)
    keypoints = mannequin_keypoints(6.0)
    size = (400, 280)
    labels = mannequin_layout(keypoints, size, 6.0)
    palette = np.random.default_rng(0).integers(0, 255, (20, 3)).astype(np.uint8)
    image = palette[labels]
    mask = (labels > 0).astype(np.float32)
    assert runtime.metadata == reference.metadata and runtime.flip == reference.flip  # same post-processing
    expected, got = (p.probabilities(image, keypoints, mask) for p in (reference, runtime))
    assert got.shape == (20, *size) and np.abs(got - expected).max() < 1e-3
    # The labels agree wherever torch's top two parts are not tied: the stage-4 head has a pixel of this image
    # whose two best parts differ by 2e-7, which float rounding may order either way.
    # Outside the crop every probability is 0 (argmax 0 in both).
    second, first = np.sort(expected, axis=0)[-2:]
    tied = (first - second <= 1e-4) & (first > 0)
    assert tied.mean() < 1e-4
    assert np.array_equal(got.argmax(0)[~tied], expected.argmax(0)[~tied])


@pytest.mark.slow
def test_onnx_edit_never_imports_torch_and_matches_the_torch_backend(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The default backend (no ``--backend``) is onnxruntime once the ONNX files are cached. With the parser in
    float32 (``RECAPTURE_PARSER_PRECISION``) the two outputs (PNG) differ by at most 1 level on 99.9% of the
    pixels and by 0.01 levels on average (float rounding in the networks, ~1e-5, flips a few roundings; a parser
    argmax could flip on a tie). Measured: at most 1 level, on 0.001% of the pixels. The default int8 parser
    runs without torch too; its labels differ on ~1% of the pixels, so its output is only close."""
    from PIL import Image
    from skimage import data

    from recapture.pipelines.onnx_parser import PRECISION_VARIABLE, export_onnx_file
    from recapture.pipelines.parser_int8 import cached_parser_int8, int8_safe_cpu

    photo = tmp_path / "photo.jpg"
    Image.fromarray(data.astronaut()).resize((420, 420)).save(photo)
    monkeypatch.setenv("RECAPTURE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RECAPTURE_THREADS", "1")
    for model in ("default", "parser-ccp"):
        export_onnx_file(model)  # the cache a first run would fill
    cached_parser_int8("parser-ccp")
    outputs = {}
    for run, flag, precision in (("onnxruntime", [], "float32"), ("torch", ["--backend", "torch"], "float32"),
                                 ("onnxruntime int8", [], "auto")):
        out = tmp_path / f"{run}.png"
        forbidden = "torch" if run.startswith("onnxruntime") else ""  # the wrapper exits 3 if a forbidden module loaded
        env = {**os.environ, PRECISION_VARIABLE: precision}
        done = subprocess.run([sys.executable, "-c", WRAPPER, forbidden, "edit", str(photo), "--pose", "hand_up",
                               "--out", str(out), *flag], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "LOADED []" in done.stdout and f"backend {run.split()[0]}" in done.stdout, done.stdout
        int8 = precision == "auto" and int8_safe_cpu()
        assert ("parser ccp (int8)," if int8 else "parser ccp,") in done.stdout, done.stdout
        outputs[run] = np.asarray(Image.open(out)).astype(int)
    difference = np.abs(outputs["onnxruntime"] - outputs["torch"])
    assert outputs["torch"].shape == (420, 420, 3)
    assert (difference <= 1).mean() > 0.999 and difference.mean() < 0.01
    quantized = np.abs(outputs["onnxruntime int8"] - outputs["torch"])
    # Measured: 1.88 levels on average, 93.5% of the pixels within 1 level.
    assert quantized.mean() < 4.0 and (quantized <= 1).mean() > 0.85, (quantized.mean(), (quantized <= 1).mean())
