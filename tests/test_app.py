"""The web editor's handlers (recapture.app.state / inputs) with a tiny random-weight model, no browser.

Uploads go through the real-photo path of ``recapture edit`` with the stand-in pose estimator, segmenter and
face detector of test_photo_pipeline (drawn stick people), so no MediaPipe runs except in the ``slow`` test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recapture.app import state as state_module
from recapture.app.inputs import AppError, PoseRows, UploadGuard, UploadLimits, decode_upload, demo_samples
from recapture.app.state import (
    EditChoice, Editor, FramingChoice, PoseChoice, display_factor, display_to_image, enlarge, for_display,
    photo_to_model,
)
from recapture.body.edits import LayoutEdits
from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.parts import LIP20
from recapture.config import load_config
from recapture.data.formats import write_annotations
from recapture.models.generator import RecaptureGenerator
from recapture.pipelines.parsing import PoseMaskLayoutParser
from recapture.pipelines.photo import PhotoModels, PhotoOptions
from recapture.pipelines.photo_io import HEIF_SUPPORTED
from recapture.pipelines.pose_estimation import PoseEstimate
from recapture.pipelines.poses import fit_keypoints, preset_library
from recapture.pipelines.recapture import Recapturer
from recapture.hub import save_generator

sys.path.insert(0, str(Path(__file__).parent))
from test_photo_pipeline import draw_people, fake_estimator, fake_faces, fake_segmenter  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
#: Rows of :func:`seated_photo` from which a table hides the person.
TABLE = 95


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
    return Editor(recapturer, samples, rows, UploadGuard([uploads]), root / "work", UploadLimits(200_000, 1024),
                  models=stand_in_models(recapturer))


def stand_in_models(recapturer: Recapturer) -> PhotoModels:
    """The photo path's models with drawn-people stand-ins for MediaPipe and the pose-mask parser."""
    return PhotoModels(recapturer, PoseMaskLayoutParser(), estimator=visible_estimator, segmenter=fake_segmenter,
                       faces=fake_faces)


def visible_estimator(image: np.ndarray) -> PoseEstimate | None:
    """test_photo_pipeline's stand-in estimator, without the joints that nothing drawn lies near (hidden,
    as BlazePose drops joints it cannot see)."""
    found = fake_estimator(image)
    if found is None:
        return None
    drawn = np.argwhere((image[..., 0] > 200) & (image[..., 2] < 200) | (image[..., 0] > 220) & (image[..., 1] > 170))
    keypoints = found.keypoints.copy()
    for joint in np.flatnonzero(~missing_mask(keypoints)):
        if np.abs(drawn - keypoints[joint]).max(axis=1).min() > 6:
            keypoints[joint] = -1
    return PoseEstimate(keypoints=keypoints, confidence=found.confidence, landmarks=found.landmarks)


def seated_photo() -> np.ndarray:
    """A 200x120 photo of a person whose body below row :data:`TABLE` is hidden by a grey table."""
    photo = draw_people([(5, 10, 190)])
    photo[TABLE:] = (110, 100, 95)
    return photo




def uploaded(editor: Editor, name: str, content: bytes | np.ndarray) -> str:
    """Write a file into the editor's upload folder as Gradio would; returns its path."""
    path = editor.guard.roots[0] / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        Image.fromarray(content).save(path)
    return str(path)


def test_samples_show_keypoints_layout_and_framing(editor: Editor) -> None:
    name = next(iter(editor.samples))
    view = editor.sample(name)
    scale = editor.display_scale
    prepared = view.source.prepared
    assert prepared.decoded.photo.shape == (32, 24, 3) and view.keypoints_image.shape == (32 * scale, 24 * scale, 3)
    np.testing.assert_array_equal(view.layout_image, enlarge(editor.recapturer.label_set.colorize(
        prepared.framed.source.layout), scale))
    assert (view.keypoints_image != enlarge(prepared.decoded.photo, scale)).any()  # the skeleton is drawn
    assert "1 person found, framing full body, parser given" in view.notes and "photo 24x32" in view.notes
    with pytest.raises(AppError, match="unknown demo sample"):
        editor.sample("../../etc/passwd")


def test_generate_returns_the_photo_and_a_full_size_download(editor: Editor, monkeypatch: pytest.MonkeyPatch) -> None:
    source = editor.sample(next(iter(editor.samples))).source
    view = editor.generate(source, PoseChoice("preset", "walking"), EditChoice())
    photo = view.photo
    assert photo.composite.shape == (32, 24, 3) and photo.composite.dtype == np.uint8
    np.testing.assert_array_equal(view.image, for_display(photo.composite))
    with Image.open(view.download) as written:
        np.testing.assert_array_equal(np.asarray(written), photo.composite)  # PNG for a sample: every pixel
        assert written.getexif()[0x0131] == "Recapture"  # the metadata `recapture edit` writes
    assert view.download.is_relative_to(editor.work_dir) and photo.encoded is not None
    np.testing.assert_array_equal(photo.geometry.target_layout, photo.geometry.predicted_layout)
    assert "Edits: none" in view.status and photo.summary() in view.status
    monkeypatch.setattr(state_module, "KEEP_DOWNLOADS", 3)
    for _ in range(4):
        latest = editor.generate(source, PoseChoice("preset", "walking"), EditChoice()).download
    assert len(list(editor.work_dir.glob("*/recapture.*"))) == 3 and latest.is_file()
    with pytest.raises(AppError, match="pick a demo sample"):
        editor.generate(None, PoseChoice("preset", "walking"), EditChoice())


def test_the_layout_choice_reaches_the_geometric_step(editor: Editor) -> None:
    source = editor.sample(next(iter(editor.samples))).source
    pose = PoseChoice("preset", "walking")
    found = {name: editor.generate(source, pose, EditChoice(), layout=name) for name in (None, "prior", "network")}
    geometry = {name: view.photo.geometry.predicted_layout for name, view in found.items()}
    np.testing.assert_array_equal(geometry[None], geometry["prior"])  # the editor's options: the prior
    assert (geometry["network"] != geometry["prior"]).any()  # the tiny model's network draws its own Ŝ_B
    assert "layout network" in found["network"].status and "layout" not in found["prior"].status.split("Edits:")[1]
    with pytest.raises(AppError, match="unknown target layout 'nets'"):
        editor.generate(source, pose, EditChoice(), layout="nets")


def test_edits_change_the_layout_as_layout_edits_do(editor: Editor) -> None:
    source = editor.sample(next(iter(editor.samples))).source
    pose = PoseChoice("preset", "front")
    plain = editor.generate(source, pose, EditChoice({"body": 1.0}, {"upper": "keep", "lower": "keep"})).photo
    choice = EditChoice({"arms": 1.0, "legs": 1.4, "torso": 1.3}, {"upper": "coat", "lower": "skirt"})
    edited = editor.generate(source, pose, choice)
    np.testing.assert_array_equal(edited.photo.geometry.predicted_layout, plain.geometry.predicted_layout)
    reference = LayoutEdits.parse(["legs=1.4", "torso=1.3"], ["upper=coat", "lower=skirt"]).apply(
        plain.geometry.predicted_layout, plain.geometry.target_keypoints, editor.recapturer.label_set)
    np.testing.assert_array_equal(edited.photo.geometry.target_layout, reference)
    assert (edited.photo.geometry.target_layout != plain.geometry.target_layout).any()
    assert (edited.photo.composite != plain.composite).any()  # the edit reaches the photo
    assert edited.layout_image.shape[1] == 2 * for_display(reference).shape[1]  # predicted | edited
    assert "legs=1.4" in edited.status and "lower=skirt" in edited.status


def test_an_upper_body_upload_keeps_its_framing_and_grows_no_legs(editor: Editor, tmp_path: Path) -> None:
    photo = seated_photo()
    path = uploaded(editor, "seated.png", photo)
    view = editor.upload(path)
    assert "1 person found, framing upper body, parser pose-mask" in view.notes and "photo 120x200" in view.notes
    assert view.keypoints_image.shape[:2] == tuple(int(display_factor((200, 120))) * np.array([200, 120]))
    lower = [KEYPOINT_INDEX[f"{side}_{joint}"] for side in ("right", "left") for joint in ("hip", "knee", "ankle")]
    network = Editor(editor.recapturer, [], editor.rows, editor.guard, tmp_path, editor.limits,
                     stand_in_models(editor.recapturer), PhotoOptions(layout="network"))  # a layout that draws legs
    seated = network.upload(path).source
    changed_below = []
    for shown, source, framing in ((editor, view.source, FramingChoice()), (network, seated, FramingChoice()),
                                   (network, seated, FramingChoice(allow_invent=True))):
        done = shown.generate(source, PoseChoice("preset", "walking"), EditChoice(), framing)
        framed = done.photo.prepared.framed
        assert done.photo.composite.shape == photo.shape and framed.extent == "upper body"
        with Image.open(done.download) as written:
            assert written.size == (120, 200)
        assert "framing upper body" in done.status and "output 120x200" in done.status
        below = TABLE + 8  # the person's lowest row + 2% (framing) + the alpha's feathering
        changed_below.append(int((done.photo.composite[below:] != photo[below:]).any(axis=2).sum()))
        assert missing_mask(framed.targets_photo[0][lower]).all() == (not framing.allow_invent)
        assert (framed.bottom is None) == framing.allow_invent == ("invent allowed" in done.status)
    assert changed_below[0] == changed_below[1] == 0  # the table stays a table...
    assert changed_below[2] > 1000  # ...unless inventing is allowed and the layout network draws legs
    assert "not retargeted" in editor.generate(view.source, PoseChoice("preset", "walking"), EditChoice(),
                                               FramingChoice(retarget=False)).status


def test_the_person_number_picks_the_other_person(editor: Editor) -> None:
    photo = draw_people([(10, 5, 180), (60, 100, 120)], size=(200, 180))
    path = uploaded(editor, "two.png", photo)
    views = [editor.upload(path, number) for number in (0, 1.0)]
    for number, view in enumerate(views):
        assert view.source.person == number and view.source.prepared.people == 2
        assert "2 people found" in view.notes and f"re-posing person {number}" in view.notes
    assert views[0].source.prepared.posed.keypoints[0, 1] < 90 < views[1].source.prepared.posed.keypoints[0, 1]
    done = editor.generate(views[1].source, PoseChoice("preset", "side"), EditChoice())
    changed = (done.photo.composite != photo).any(axis=2)
    assert changed[:, 100:].any() and not changed[:, :90].any()  # person 1 (right) re-posed, person 0 untouched
    assert "2 people found" in done.status
    for bad, message in ((2, "no person 2: 2 people found"), (-1, "0, 1, 2"), (0.5, "0, 1, 2")):
        with pytest.raises(AppError, match=message):
            editor.upload(path, bad)


@pytest.mark.skipif(not HEIF_SUPPORTED, reason="pillow-heif is not installed")
def test_heic_uploads_are_accepted_like_edit_accepts_them(editor: Editor) -> None:
    photo = draw_people([(5, 10, 190)])
    path = editor.guard.roots[0] / "person.heic"
    Image.fromarray(photo).save(path, format="HEIF", quality=95)
    decoded = decode_upload(path, editor.limits)
    assert decoded.format == "HEIF" and decoded.pixels.shape == photo.shape
    assert np.abs(decoded.pixels.astype(int) - photo).mean() < 6
    view = editor.upload(str(path))
    done = editor.generate(view.source, PoseChoice("preset", "front"), EditChoice())
    assert done.download.suffix == ".jpg" and Image.open(done.download).size == (120, 200)


def test_display_sizes_and_clicks() -> None:
    assert display_factor((32, 24)) == 12 and display_factor((400, 300)) == 1
    big = np.zeros((3000, 1500, 3), np.uint8)
    assert for_display(big).shape == (1024, 512, 3)
    assert display_to_image((25, 37), (32, 24)) == (3, 2)
    assert display_to_image((511, 1023), (3000, 1500)) == (2997, 1497)  # floor(v * 3000 / 1024)
    from recapture.pipelines.wild import PersonCrop

    crop = PersonCrop(box=(10.0, 20.0, 74.0, 68.0), scale=0.5, model_size=(32, 24))
    assert photo_to_model((10, 20), crop) == (0, 0) and photo_to_model((73, 67), crop) == (31, 23)
    assert photo_to_model((9, 40), crop) is None and photo_to_model((40, 68), crop) is None


def test_edit_choices_are_validated() -> None:
    assert EditChoice({"arms": 1.0}, {"upper": "keep"}).to_edits().is_empty()
    expected = LayoutEdits.parse(["arms=0.6"], ["lower=shorts"])
    assert EditChoice({"arms": 0.6}, {"lower": "shorts"}).to_edits() == expected
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
    np.testing.assert_array_equal(decode_upload(Path(uploaded(editor, "ok.png", photo)), editor.limits).pixels, photo)


@pytest.mark.slow
def test_uploaded_portrait_and_pose_photo_with_mediapipe(editor: Editor, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pytest.importorskip("skimage.data")
    real = Editor(editor.recapturer, [], editor.rows, editor.guard, editor.work_dir / "real", editor.limits)
    try:
        path = uploaded(editor, "astronaut.jpg", data.astronaut())
        view = real.upload(path)
        source = view.source.prepared.framed.source
        assert source.image.shape == (32, 24, 3) and view.source.prepared.decoded.photo.shape == (512, 512, 3)
        assert source.layout.max() < editor.recapturer.label_set.num_parts and (source.layout > 0).any()
        assert "framing upper body" in view.notes
        keypoints = real.target_pose(PoseChoice("pose photo", photo=path))
        assert (~missing_mask(keypoints)).sum() >= 5
        assert not list(real.work_dir.glob("pose-*.png"))  # the server's copy is removed
        with pytest.raises(AppError, match="no person"):
            real.upload(uploaded(editor, "empty.png", np.full((96, 64, 3), 200, np.uint8)))
        small = data.astronaut()[::2, ::2]
        pair = np.concatenate([small, np.full((256, 32, 3), 255, np.uint8), small], axis=1)
        monkeypatch.setattr(real, "limits", UploadLimits(2_000_000, 1024))  # a PNG of two people
        assert "people found; re-posing person 0" in real.upload(uploaded(editor, "two.png", pair)).notes
    finally:
        real.close()


def test_attention_of_a_clicked_pixel(editor: Editor) -> None:
    source = editor.sample(next(iter(editor.samples))).source
    photo = editor.generate(source, PoseChoice("preset", "front"), EditChoice()).photo
    factor = int(display_factor(photo.composite.shape[:2]))
    click = (10 * factor + 1, 20 * factor + 2)  # display (x, y) -> photo pixel (20, 10)
    pixel = photo_to_model((20, 10), photo.prepared.framed.crop)
    assert pixel is not None
    shown = editor.attention(photo, click)
    reference = editor.recapturer.attention(photo.result, pixel).overlay
    scale = editor.display_scale
    np.testing.assert_array_equal(shown[:, 24 * scale:], enlarge(reference, scale))
    with pytest.raises(AppError, match="outside the 24x32 result"):
        editor.attention(photo, (24 * factor, 0))
    with pytest.raises(AppError, match="generate an image first"):
        editor.attention(None, (0, 0))


def test_page_wiring_and_error_messages(editor: Editor, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    from recapture.app import server

    page = server.build_app(editor)
    assert isinstance(page, gr.Blocks)
    ids = {getattr(block, "elem_id", None) for block in page.blocks.values()}
    assert {"person", "upload", "source-notes", "status", "download"} <= ids
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
