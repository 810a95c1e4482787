"""Fault injection, command line: foreign weights, bad output paths and devices, outputs that would replace
an input, size bounds, refused folders, a failing demo. Every case: exit code 1 or 2 and one error line,
no traceback, nothing computed before the check, nothing of the user's lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

import recapture.hub
from recapture.cli import app

pytestmark = pytest.mark.faults


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "Aborted" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(path)
    return path


@pytest.fixture
def no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model counts as starting the work: fail loudly if a command gets that far."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(recapture.hub, "load_generator", refuse)


BAD_MODELS = ["random-bytes", "empty", "foreign", "truncated", "flipped", "other-architecture"]


@pytest.mark.parametrize("command", ["edit", "video", "evaluate", "demo", "serve", "export"])
@pytest.mark.parametrize("bad", BAD_MODELS)
def test_foreign_or_damaged_model_is_one_line(bad_model_files: dict[str, Path], tmp_path: Path, photo: Path,
                                              tiny_manifest: Path, command: str, bad: str) -> None:
    model = bad_model_files[bad]
    args = {"edit": ["edit", photo, "--pose", "front", "--out", tmp_path / "out.png", "--model", model],
            "video": ["video", "--source", photo, "--reference", photo, "--out", tmp_path / "out.mp4",
                      "--model", model],
            "evaluate": ["evaluate", "--model", model, "--data", tiny_manifest, "--split", "train"],
            "demo": ["demo", "--out", tmp_path / "demo", "--model", model, "--no-wild"],
            "serve": ["serve", "--model", model, "--port", "1"],
            "export": ["export", model, "--out", tmp_path / "x.safetensors"]}[command]
    line = _one_line_error(_run(*args))
    if command == "export":
        assert str(model) in line
    else:
        assert f"not a Recapture model: {model} (" in line, line
    assert not (tmp_path / "demo").exists() and not list(tmp_path.glob(".demo.partial-*"))


@pytest.mark.parametrize("case", ["missing-folder", "folder-as-file", "is-the-source", "layout-is-the-source"])
def test_edit_output_paths_are_checked_before_any_work(tmp_path: Path, photo: Path, no_compute: None,
                                                       case: str) -> None:
    original = photo.read_bytes()
    out = {"missing-folder": tmp_path / "nope" / "out.png", "folder-as-file": tmp_path,
           "is-the-source": photo, "layout-is-the-source": tmp_path / "fine.png"}[case]
    extra = ["--layout-out", photo] if case == "layout-is-the-source" else []
    line = _one_line_error(_run("edit", photo, "--pose", "front", "--out", out, *extra))
    assert ("--overwrite" in line) == case.endswith("source"), line
    assert photo.read_bytes() == original


@pytest.mark.parametrize("command", ["video", "evaluate-json", "evaluate-markdown", "evaluate-out", "synth-preview",
                                     "demo"])
def test_other_output_paths_are_checked_before_any_work(tmp_path: Path, photo: Path, tiny_manifest: Path,
                                                        no_compute: None, command: str) -> None:
    missing = tmp_path / "missing" / "x"
    (tmp_path / "afile").write_text("x")
    args = {"video": ["video", "--source", photo, "--reference", photo, "--out", f"{missing}.mp4"],
            "evaluate-json": ["evaluate", "--model", "m", "--data", tiny_manifest, "--json", f"{missing}.json"],
            "evaluate-markdown": ["evaluate", "--model", "m", "--data", tiny_manifest, "--markdown", tmp_path],
            "evaluate-out": ["evaluate", "--model", "m", "--data", tiny_manifest, "--out", tmp_path / "afile"],
            "synth-preview": ["synth", "--preview", tmp_path],
            "demo": ["demo", "--out", tmp_path / "afile"]}[command]
    _one_line_error(_run(*args), code=2 if command.startswith("synth") else 1)


def test_video_refuses_to_overwrite_its_reference(tmp_path: Path, photo: Path, no_compute: None) -> None:
    reference = tmp_path / "reference.mp4"
    reference.write_bytes(b"not really a video")
    line = _one_line_error(_run("video", "--source", photo, "--reference", reference, "--out", reference))
    assert "also an input" in line and reference.read_bytes() == b"not really a video"


@pytest.mark.parametrize("device", ["banana", "cuda:99", "cuda", "mps", "cpu:x"])
@pytest.mark.parametrize("command", ["evaluate", "serve", "train"])
def test_bad_device_lists_the_valid_ones(tmp_path: Path, tiny_manifest: Path, no_compute: None, command: str,
                                         device: str) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    args = {"evaluate": ["evaluate", "--model", "m", "--data", tiny_manifest, "--device", device],
            "serve": ["serve", "--device", device],
            "train": ["train", "--config", Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml", "--set",
                      f"data.manifest={tiny_manifest}", "--set", f"train.run_dir={tmp_path / 'r'}", "--set",
                      f"train.device={device}"]}[command]
    line = _one_line_error(_run(*args))
    assert "valid here: " in line and "cpu" in line.split("valid here: ")[1]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("port", ["70000", "0", "-1", "http"])
def test_port_out_of_range_is_a_usage_error(port: str) -> None:
    result = _run("serve", "--port", port)
    assert result.exit_code == 2 and "Traceback" not in result.output and "--port" in result.output


@pytest.mark.parametrize("size", ["20000x20000", "8x8", "1025x64", "0x0", "256x", "big"])
def test_synth_size_bounds(tmp_path: Path, size: str) -> None:
    line = _one_line_error(_run("synth", "--out", tmp_path / "data", "--size", size), code=2)
    assert "size" in line
    assert not (tmp_path / "data").exists()


def test_synth_refuses_non_empty_folders_and_overwrites_only_its_own(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    args = ["synth", "--people", "2", "--poses", "2", "--size", "32x16"]
    first = _run(*args, "--out", mine)
    assert first.exit_code == 0, first.output
    (mine / "train" / "leftover.png").write_bytes(b"from an earlier run")
    line = _one_line_error(_run(*args, "--out", mine), code=2)
    assert "--overwrite" in line
    again = _run(*args, "--out", mine, "--overwrite")
    assert again.exit_code == 0, again.output
    assert not (mine / "train" / "leftover.png").exists() and (mine / "manifest.yaml").is_file()
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    line = _one_line_error(_run(*args, "--out", home, "--overwrite"), code=2)
    assert "not cleared" in line and (home / "thesis.tex").read_text() == "years of work"


def test_demo_failure_leaves_the_earlier_demo_and_no_partial_folder(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import recapture.demo as demo

    out = tmp_path / "demo-out"
    out.mkdir()
    (out / "index.html").write_text(f"<title>{demo.TITLE}</title> the earlier demo")

    def fails(work: Path, *args: object) -> list[Path]:
        (work / "poses.png").write_bytes(b"half")
        raise RuntimeError("ffmpeg vanished\nsecond line")

    monkeypatch.setattr(demo, "_write_demo", fails)
    line = _one_line_error(_run("demo", "--out", out))
    assert "RuntimeError: ffmpeg vanished second line" in line and "left unchanged" in line
    assert [p.name for p in out.iterdir()] == ["index.html"] and "earlier demo" in (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-out"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("mine")
    _one_line_error(_run("demo", "--out", other))


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 10, 3), (10, 0, 3)])
def test_empty_images_are_refused_by_the_python_api(tiny_model_file: Path, shape: tuple[int, int, int]) -> None:
    from recapture.pipelines.recapture import Recapturer

    keypoints = np.full((18, 2), 5.0)
    with pytest.raises(ValueError, match="non-empty"):
        Recapturer.from_pretrained(tiny_model_file)(np.zeros(shape, np.uint8), keypoints, source_pose=keypoints,
                                                    source_layout=np.zeros(shape[:2], np.uint8))
