"""ONNX export of the generator and the ONNX Runtime backend: parity with eager torch on a tiny config,
SAT's exportable form, the export/edit/evaluate commands, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")

from recapture.cli import app  # noqa: E402
from recapture.config import load_config  # noqa: E402
from recapture.data.formats import write_layout  # noqa: E402
from recapture.hub import WeightsError, load_generator  # noqa: E402
from recapture.models.generator import RecaptureGenerator  # noqa: E402
from recapture.models.sat import SemanticAttentiveTransfer, part_attention  # noqa: E402
from recapture.pipelines.onnx_backend import (OnnxGenerator, dense_sat, example_inputs, export_onnx,  # noqa: E402
                                              load_onnx_generator)
from recapture.pipelines.poses import fit_keypoints, preset_library  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SIZE = (32, 24)


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx").path


def test_dense_sat_equals_the_fast_path_with_absent_parts() -> None:
    torch.manual_seed(0)
    sat = SemanticAttentiveTransfer(6, 5, 4, sn=False).eval()
    decoder, encoder = torch.randn(2, 6, 7, 5), torch.randn(2, 5, 7, 5)
    source = torch.randint(0, 3, (2, 7, 5))
    target = torch.randint(0, 5, (2, 7, 5))  # parts 3 and 4 never occur in the source
    with torch.no_grad():
        fast = sat(decoder, encoder, source, target)
        fast_flow = sat.transfer_with_coordinates(decoder, encoder, source, target)
        with dense_sat(sat):
            assert sat.dense
            dense = sat(decoder, encoder, source, target)
            dense_flow = sat.transfer_with_coordinates(decoder, encoder, source, target)
        assert not sat.dense
    assert all((d - f).abs().max() <= 1e-5 for d, f in zip(dense_flow, fast_flow))
    assert (dense - fast).abs().max() <= 1e-5
    absent = target >= 3
    assert absent.any() and dense.permute(0, 2, 3, 1)[absent].abs().max() == 0
    query, key = sat.query(decoder), sat.key(encoder)
    assert torch.allclose(part_attention(query, key, encoder, source, target), fast)


def test_onnx_runtime_matches_eager_torch(tiny_model: Path, exported: Path) -> None:
    torch_generator = load_generator(tiny_model).generator
    onnx_generator = load_onnx_generator(exported, threads=1).generator
    assert isinstance(onnx_generator, OnnxGenerator) and onnx_generator.config == load_generator(tiny_model).config
    inputs = [torch.cat(pair) for pair in zip(example_inputs(onnx_generator.config, 1),
                                                example_inputs(onnx_generator.config, 2))]  # batch 2
    with torch.no_grad():
        given = [g(*inputs[:4], target_layout=inputs[4]) for g in (torch_generator, onnx_generator)]
        predicted = [g(*inputs[:4]) for g in (torch_generator, onnx_generator)]
        labels = inputs[4].argmax(dim=1)
        as_labels = onnx_generator(*inputs[:4], target_layout=labels)
    for expected, got in (given, predicted):
        assert (got.image - expected.image).abs().max() < 1e-3
        assert (got.layout_logits - expected.layout_logits).abs().max() < 1e-3
        assert torch.equal(got.target_layout, expected.target_layout.detach())
    assert (given[0].image - predicted[0].image).abs().max() > 1e-3  # the target layout input matters
    assert torch.equal(as_labels.image, given[1].image)
    with pytest.raises(ValueError, match="torch backend"):
        onnx_generator.sat_attention(*inputs[:4], (3, 3))
    with pytest.raises(ValueError, match="source_pose"):
        onnx_generator(inputs[0], inputs[1], inputs[2][:, :5], inputs[3])


def test_export_and_edit_commands(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.onnx"
    done = CliRunner().invoke(app, ["export", str(tiny_model), "--format", "onnx", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert load_onnx_generator(out).metadata["trained_on"] == "random init"
    rng = np.random.default_rng(1)
    layout = np.zeros(SIZE, np.uint8)
    layout[2:8, 8:15], layout[8:20, 7:16], layout[20:31, 7:16] = 13, 5, 9
    Image.fromarray(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)).save(tmp_path / "src.png")
    write_layout(tmp_path / "layout.png", layout)
    keypoints = fit_keypoints(preset_library()["front"].keypoints, (256, 176), SIZE)
    (tmp_path / "src.json").write_text(json.dumps({"keypoints": keypoints.tolist(), "frame": list(SIZE)}))
    images = {}
    for backend, model in (("torch", tiny_model), ("onnxruntime", out), ("onnxruntime", tiny_model)):
        target = tmp_path / f"{backend}-{Path(model).suffix[1:]}.png"
        done = CliRunner().invoke(app, [
            "edit", str(tmp_path / "src.png"), "--pose", "walking", "--out", str(target), "--model", str(model),
            "--source-pose", str(tmp_path / "src.json"), "--source-layout", str(tmp_path / "layout.png"),
            "--backend", backend, "--threads", "1", "--fatter", "arms"])
        assert done.exit_code == 0, done.output
        images[target.stem] = np.asarray(Image.open(target), dtype=np.int16)
    reference = images.pop("torch-safetensors")
    for image in images.values():
        assert np.abs(image - reference).max() <= 1
    bad = CliRunner().invoke(app, ["edit", str(tmp_path / "src.png"), "--pose", "walking", "--out",
                                   str(tmp_path / "x.png"), "--model", str(out), "--backend", "tensorflow"])
    assert bad.exit_code == 1 and "--backend must be one of" in bad.output


def test_bad_onnx_files_are_one_line_errors(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \x00\xff" * 10)
    with pytest.raises(WeightsError, match="junk.onnx"):
        load_onnx_generator(tmp_path / "junk.onnx")
    with pytest.raises(WeightsError, match="no ONNX model"):
        load_onnx_generator(tmp_path / "missing.onnx")
    import onnx

    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(WeightsError, match="not a Recapture ONNX generator"):
        load_onnx_generator(tmp_path / "other.onnx")
    done = CliRunner().invoke(app, ["export", str(tmp_path / "nothing-here"), "--format", "onnx", "--out",
                                    str(tmp_path / "x.onnx")])
    assert done.exit_code == 1 and done.output.startswith("error:") and len(done.output.splitlines()) == 1


def test_keypoint_prior_and_internal_size_models_export(tmp_path: Path) -> None:
    from recapture.body.keypoints import keypoints_to_heatmaps
    from recapture.hub import LoadedGenerator
    from recapture.models.inference import prepare_for_inference

    config = load_config(CONFIGS / "tiny.yaml", ["model.geometric_prior=true", "model.internal_size=[16,12]"]).model
    torch.manual_seed(2)
    reference = prepare_for_inference(RecaptureGenerator(config))
    path = export_onnx(LoadedGenerator(reference, config, "memory", {}), tmp_path / "prior.onnx").path
    exported = load_onnx_generator(path, threads=1).generator
    presets = preset_library()
    keypoints = [fit_keypoints(presets[name].keypoints, (256, 176), SIZE) for name in ("front", "walking")]
    poses = [keypoints_to_heatmaps(k, SIZE)[None] for k in keypoints]
    image, layout, _, _, target_layout = example_inputs(config, 4)
    with torch.no_grad():
        for keys in ((keypoints[0][None], keypoints[1][None]), (None, None)):  # given, or read off the heatmaps
            expected = reference.geometric(layout, poses[0], poses[1], *keys)
            assert (exported.geometric(layout, poses[0], poses[1], *keys) - expected).abs().max() < 1e-3
        expected = reference.render(image, layout, poses[0], target_layout, poses[1])
        got = exported.render(image, layout, poses[0], target_layout, poses[1])
    assert got.shape == (1, 3, *SIZE) and (got - expected).abs().max() < 1e-3


def test_evaluation_generates_the_same_batch_with_either_backend(tiny_model: Path, exported: Path,
                                                                  tiny_manifest: Path) -> None:
    from recapture.data.dataset import PairDataset, collate_pairs
    from recapture.evaluation.generate import generate

    dataset = PairDataset(tiny_manifest, split="train", flip=False)
    batch = collate_pairs([dataset[i] for i in range(3)])
    generators = (load_generator(tiny_model).generator, load_onnx_generator(exported, threads=1).generator)
    for target_layout in (None, batch.target_layout.argmax(dim=1)):
        torch_out, onnx_out = (generate(g, batch, target_layout) for g in generators)
        assert torch.equal(torch_out.used_labels, onnx_out.used_labels)
        assert (torch_out.images.int() - onnx_out.images.int()).abs().max() <= 1


def test_a_correspondence_export_is_for_the_photo_path_only(tmp_path: Path) -> None:
    """The bundled default exports (tests/test_onnx_photo.py checks its parity); the generic backend, which
    needs the geometric network in the file, says where the file runs instead."""
    path = export_onnx("default", tmp_path / "default.onnx").path
    with pytest.raises(WeightsError, match="photo path.*--backend torch"):
        OnnxGenerator(path)
