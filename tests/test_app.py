"""The web editor's handlers (recapture.app.state / inputs) with a tiny random-weight model, no browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recapture.app.inputs import AppError, PoseRows, UploadGuard, UploadLimits, decode_upload, demo_samples
from recapture.app.state import KEEP_DOWNLOADS, EditChoice, Editor, PoseChoice, enlarge
from recapture.body.edits import LayoutEdits
from recapture.body.keypoints import missing_mask
from recapture.body.parts import LIP20
from recapture.config import load_config
from recapture.data.formats import write_annotations
from recapture.models.generator import RecaptureGenerator
from recapture.pipelines.poses import fit_keypoints, preset_library
from recapture.pipelines.recapture import Recapturer
from recapture.hub import save_generator

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def save_tiny_model(path: Path) -> Path:
    """A 32x24 random-weight generator exported like real weights."""
    torch.manual_seed(0)
    config = load_config(CONFIG).model
    return save_generator(RecaptureGenerator(config).state_dict(), config, path, {"trained_on": "nothing (random)"})


def write_pose_file(path: Path) -> tuple[Path, list[str]]:
    """An annotation CSV (256x176 frame) whose rows are the preset poses, named ``row_<preset>.jpg``."""
    presets = preset_library()
    names = [f"row_{name}.jpg" for name in presets]
    write_annotations(path, names, np.stack([p.keypoints for p in presets.values()]).astype(np.int64))
    return path, names


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors run ~100x slower when torch's threads fight other processes for 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Editor:
    root = tmp_path_factory.mktemp("app")
    recapturer = Recapturer.from_pretrained(save_tiny_model(root / "tiny.safetensors"))
    rows = PoseRows([write_pose_file(root / "poses-test.csv")[0]])
    uploads = root / "uploads"
    uploads.mkdir()
    samples = demo_samples(recapturer.image_size, recapturer.label_set, count=2)
    return Editor(recapturer, samples, rows, UploadGuard([uploads]), root / "work", UploadLimits(200_000, 1024))


def uploaded(editor: Editor, name: str, content: bytes | np.ndarray) -> str:
    """Write a file into the editor's upload folder as Gradio would; returns its path."""
    path = editor.guard.roots[0] / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        Image.fromarray(content).save(path)
    return str(path)


def test_samples_show_keypoints_and_layout(editor: Editor) -> None:
    name = next(iter(editor.samples))
    view = editor.sample(name)
    scale = editor.display_scale
    assert view.source.image.shape == (32, 24, 3) and view.keypoints_image.shape == (32 * scale, 24 * scale, 3)
    np.testing.assert_array_equal(view.layout_image, enlarge(editor.recapturer.label_set.colorize(view.source.layout),
                                                             scale))
    assert (view.keypoints_image != enlarge(view.source.image, scale)).any()  # the skeleton is drawn
    with pytest.raises(AppError, match="unknown demo sample"):
        editor.sample("../../etc/passwd")


def test_generate_returns_result_and_download(editor: Editor) -> None:
    source = editor.samples[next(iter(editor.samples))].source
    view = editor.generate(source, PoseChoice("preset", "walking"), EditChoice())
    assert view.result.image.shape == (32, 24, 3) and view.result.image.dtype == np.uint8
    np.testing.assert_array_equal(view.image, enlarge(view.result.image, editor.display_scale))
    np.testing.assert_array_equal(np.asarray(Image.open(view.download)), view.result.image)
    assert view.download.is_relative_to(editor.work_dir)
    np.testing.assert_array_equal(view.result.target_layout, view.result.predicted_layout)
    presets = preset_library()
    expected = fit_keypoints(presets["walking"].keypoints, presets["walking"].frame, (32, 24))
    np.testing.assert_array_equal(view.result.target_keypoints, expected)
    assert "Edits: none" in view.status
    for _ in range(KEEP_DOWNLOADS):
        latest = editor.generate(source, PoseChoice("preset", "walking"), EditChoice()).download
    assert len(list(editor.work_dir.glob("*/recapture.png"))) == KEEP_DOWNLOADS and latest.is_file()
    with pytest.raises(AppError, match="pick a demo sample"):
        editor.generate(None, PoseChoice("preset", "walking"), EditChoice())


def test_edits_change_the_layout_as_layout_edits_do(editor: Editor) -> None:
    source = editor.samples[next(iter(editor.samples))].source
    pose = PoseChoice("preset", "front")
    plain = editor.generate(source, pose, EditChoice({"body": 1.0}, {"upper": "keep", "lower": "keep"}))
    choice = EditChoice({"arms": 1.0, "legs": 1.4, "torso": 1.3}, {"upper": "coat", "lower": "skirt"})
    edited = editor.generate(source, pose, choice)
    np.testing.assert_array_equal(edited.result.predicted_layout, plain.result.predicted_layout)
    reference = LayoutEdits.parse(["legs=1.4", "torso=1.3"], ["upper=coat", "lower=skirt"]).apply(
        plain.result.predicted_layout, plain.result.target_keypoints, editor.recapturer.label_set)
    np.testing.assert_array_equal(edited.result.target_layout, reference)
    assert (edited.result.target_layout != plain.result.target_layout).any()
    assert edited.layout_image.shape[1] == 2 * plain.layout_image.shape[1]  # predicted | edited
    assert "legs=1.4" in edited.status and "lower=skirt" in edited.status


def test_edit_choices_are_validated() -> None:
    assert EditChoice({"arms": 1.0}, {"upper": "keep"}).to_edits().is_empty()
    assert EditChoice({"arms": 0.6}, {"lower": "shorts"}).to_edits() == LayoutEdits.parse(["arms=0.6"], ["lower=shorts"])
    for bad in (EditChoice({"arms": 1.6}), EditChoice({"neck": 1.2}), EditChoice(clothing={"lower": "coat"}),
                EditChoice(clothing={"hat": "keep"})):
        with pytest.raises(AppError):
            bad.to_edits()


def test_target_pose_from_presets_and_server_rows(editor: Editor) -> None:
    presets = preset_library()
    expected = fit_keypoints(presets["side"].keypoints, presets["side"].frame, (32, 24))
    np.testing.assert_array_equal(editor.target_pose(PoseChoice("preset", "side")), expected)
    np.testing.assert_array_equal(editor.target_pose(PoseChoice("annotation row", row="row_side.jpg")), expected)
    np.testing.assert_array_equal(editor.target_pose(PoseChoice("annotation row", row="poses-test.csv:row_side.jpg")),
                                  expected)
    assert editor.rows.example() == "poses-test.csv:row_front.jpg"
    with pytest.raises(AppError, match="no row 'nope.jpg'"):
        editor.target_pose(PoseChoice("annotation row", row="nope.jpg"))
    with pytest.raises(AppError, match="unknown pose preset"):
        editor.target_pose(PoseChoice("preset", "/etc/passwd"))
    with pytest.raises(AppError, match="unknown pose source"):
        editor.target_pose(PoseChoice("file", "front"))
    with pytest.raises(AppError, match="without --pose-file"):
        PoseRows().lookup("x.jpg", (32, 24))


def test_client_paths_are_never_opened(editor: Editor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.csv"
    write_pose_file(secret)
    inside = editor.guard.roots[0] / "link.png"
    inside.symlink_to(secret)
    opened: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))
    monkeypatch.setattr("recapture.app.inputs.read_annotations", lambda *a, **k: pytest.fail("a CSV was read"))
    for path in (str(secret), str(inside), str(editor.guard.roots[0] / ".." / "tiny.safetensors"), "", None):
        with pytest.raises(AppError):
            editor.upload(path)
        with pytest.raises(AppError):
            editor.target_pose(PoseChoice("pose photo", photo=path))
    with pytest.raises(AppError, match="unknown pose file"):
        editor.target_pose(PoseChoice("annotation row", row=f"{secret}:row_front.jpg"))
    assert opened == []


def test_bad_uploads_give_clean_errors(editor: Editor) -> None:
    photo = np.full((64, 48, 3), 128, np.uint8)
    cases = {
        "not an image": uploaded(editor, "notes.png", b"just some text, not pixels"),
        "too large": uploaded(editor, "huge.png", b"\x89PNG" + bytes(300_000)),
        "at most 1024x1024": uploaded(editor, "wide.png", np.zeros((8, 1100, 3), np.uint8)),
    }
    truncated = Path(uploaded(editor, "cut.png", np.random.default_rng(0).integers(0, 255, (64, 48, 3), np.uint8)))
    truncated.write_bytes(truncated.read_bytes()[:300])
    cases["could not be decoded"] = str(truncated)
    for message, path in cases.items():
        with pytest.raises(AppError, match=message):
            decode_upload(Path(path), editor.limits)
        with pytest.raises(AppError, match=message):
            editor.upload(path)
    np.testing.assert_array_equal(decode_upload(Path(uploaded(editor, "ok.png", photo)), editor.limits), photo)


@pytest.mark.slow
def test_uploaded_portrait_and_pose_photo(editor: Editor, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pytest.importorskip("skimage.data")
    path = uploaded(editor, "astronaut.jpg", data.astronaut())
    view = editor.upload(path)
    assert view.source.image.shape == (32, 24, 3) and view.source.layout.shape == (32, 24)
    assert view.source.layout.max() < editor.recapturer.label_set.num_parts and (view.source.layout > 0).any()
    keypoints = editor.target_pose(PoseChoice("pose photo", photo=path))
    assert (~missing_mask(keypoints)).sum() >= 5
    assert not list(editor.work_dir.glob("pose-*.png"))  # the server's copy is removed
    with pytest.raises(AppError, match="no person"):
        editor.upload(uploaded(editor, "empty.png", np.full((96, 64, 3), 200, np.uint8)))
    small = data.astronaut()[::2, ::2]
    pair = np.concatenate([small, np.full((256, 32, 3), 255, np.uint8), small], axis=1)
    monkeypatch.setattr(editor, "limits", UploadLimits(2_000_000, 1024))  # a PNG of two people
    editor.upload(uploaded(editor, "two.png", pair))
    assert any("people found" in message for message in editor.messages), editor.messages


def test_attention_of_a_clicked_pixel(editor: Editor) -> None:
    source = editor.samples[next(iter(editor.samples))].source
    view = editor.generate(source, PoseChoice("preset", "front"), EditChoice())
    scale = editor.display_scale
    shown = editor.attention(view.result, (10 * scale + 1, 20 * scale + 2))  # display (x, y) -> model (20, 10)
    reference = editor.recapturer.attention(view.result, (20, 10)).overlay
    np.testing.assert_array_equal(shown[:, 24 * scale:], enlarge(reference, scale))
    with pytest.raises(AppError, match="outside"):
        editor.attention(view.result, (24 * scale, 0))
    with pytest.raises(AppError, match="generate an image first"):
        editor.attention(None, (0, 0))


def test_page_wiring_and_error_messages(editor: Editor, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    from recapture.app import server

    assert isinstance(server.build_app(editor), gr.Blocks)
    with pytest.raises(gr.Error, match="not an image"):
        server.user_errors(lambda: (_ for _ in ()).throw(AppError("not an image")))()
    with pytest.raises(gr.Error) as caught:
        server.user_errors(lambda: 1 / 0)()
    assert "division" not in caught.value.message and "server" in caught.value.message
    monkeypatch.setattr(server, "bundled_models", lambda: [])
    with pytest.raises(AppError, match="--model"):
        server.serve("synthhumans")


def test_serve_command_reports_missing_weights(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from recapture.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "missing.safetensors")])
    assert result.exit_code == 1 and "no weights" in result.output


def test_editor_samples_are_people_no_bundled_model_trained_on() -> None:
    from recapture.data.synthetic import SHOWCASE_SEED, render_person, sample_identity, sample_shot

    samples = demo_samples((64, 32), LIP20, count=2)
    for person, sample in enumerate(samples):
        pose, background = sample_shot(SHOWCASE_SEED, person, 0, "plain", 0.0)
        expected = render_person(sample_identity(SHOWCASE_SEED, person), pose, background, (64, 32))
        trained = render_person(sample_identity(0, person), *sample_shot(0, person, 0, "plain", 0.0), (64, 32))
        assert np.array_equal(sample.source.image, expected.image)
        assert not np.array_equal(sample.source.image, trained.image)
    assert SHOWCASE_SEED != 0
