"""``recapture demo``: the offline tour of everything Recapture does, written as ``index.html`` + PNGs + MP4.

Sources are SynthHumans people the bundled model never saw (another seed than its training data), with
their exact keypoints and layouts; target poses are real DeepFashion poses from the preset library.
The in-the-wild section runs the full photo pipeline on scikit-image's astronaut photo.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from recapture.body.edits import LayoutEdits
from recapture.fileio import OutputPathError, check_output_dir
from recapture.data.synthetic import SHOWCASE_SEED
from recapture.pipelines.poses import fit_keypoints, preset_library
from recapture.pipelines.recapture import Recapturer, SourceInput
from recapture.hub import describe

#: The page title, also how an earlier demo folder is recognised (and may be replaced).
TITLE = "Recapture demo"
POSES = ("front", "walking", "side", "back", "hand_up", "upper_body")
FIGURES = ("body=0.8", "body=1.0", "body=1.25", "arms=1.3", "legs=0.8")
CLOTHING = ("lower=skirt", "lower=shorts", "lower=pants", "upper=long_sleeves", "upper=coat")


@dataclass(frozen=True)
class DemoReport:
    """What the demo wrote and how long it took."""

    out: Path
    index: Path
    files: tuple[Path, ...]
    seconds: float


def demo_sources(recapturer: Recapturer, count: int = 3) -> list[SourceInput]:
    """Front-view SynthHumans people (seed :data:`SHOWCASE_SEED`) with their exact keypoints and layouts."""
    from recapture.body.parts import merge_lip20
    from recapture.data.synthetic import render_person, sample_identity, sample_shot

    sources: list[SourceInput] = []
    person = 0
    while len(sources) < count and person < 200:
        identity = sample_identity(SHOWCASE_SEED, person)
        for shot in range(8):
            pose, background = sample_shot(SHOWCASE_SEED, person, shot, "plain", 0.0)
            if getattr(pose, "view", "front") != "front":
                continue
            rendering = render_person(identity, pose, background, recapturer.image_size)
            if (rendering.keypoints[:, 0] < 0).sum() > 2:
                continue
            layout = rendering.layout if recapturer.label_set.name == "lip20" else merge_lip20(
                rendering.layout, recapturer.label_set.name)
            sources.append(SourceInput(rendering.image, rendering.keypoints.astype(np.float64), layout))
            break
        person += 1
    return sources


def _save(out: Path, name: str, image: np.ndarray, scale: int = 2) -> Path:
    path = out / name
    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return path


def _row(images: list[np.ndarray], gap: int = 2) -> np.ndarray:
    height = max(i.shape[0] for i in images)
    padded = [np.pad(i, ((0, height - i.shape[0]), (0, gap), (0, 0)), constant_values=255) for i in images]
    return np.concatenate(padded, axis=1)


def _grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    lines = [_row(r) for r in rows]
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 2), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    return np.concatenate(lines, axis=0)


def _section(title: str, text: str, files: list[tuple[str, str]]) -> str:
    figures = "".join(f'<figure><img src="{html.escape(f)}"><figcaption>{html.escape(c)}</figcaption></figure>'
                      for f, c in files)
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p><div class='row'>{figures}</div>"


def _check_out(out: Path) -> None:
    """``out`` may be absent, empty, or an earlier demo (its ``index.html`` is ours); never another folder."""
    check_output_dir(out, "--out")
    if out.is_dir() and any(out.iterdir()):
        index = out / "index.html"
        if not (index.is_file() and TITLE in index.read_text(encoding="utf-8", errors="replace")):
            raise OutputPathError(f"--out {out} is not empty and holds no earlier demo; give a new or empty folder")


def run_demo(out: str | Path = "demo-out", model: str = "synthhumans", wild: bool = True,
             video_frames: int = 8) -> DemoReport:
    """Write the demo; returns what was written. Fully offline.

    Everything is written into a hidden sibling folder first, which replaces ``out`` only when complete:
    a failure (or a kill) leaves ``out`` as it was (the partial folder is removed on failure).
    """
    start = time.monotonic()
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        files = _write_demo(work, model, wild, video_frames, start)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    aside = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, aside)
    os.replace(work, out)
    shutil.rmtree(aside, ignore_errors=True)
    return DemoReport(out=out, index=out / "index.html", files=tuple(out / p.relative_to(work) for p in files),
                      seconds=time.monotonic() - start)


def _write_demo(out: Path, model: str, wild: bool, video_frames: int, start: float) -> list[Path]:
    """Write every demo file into ``out``; returns the image and video files."""
    recapturer = Recapturer.from_pretrained(model)
    size, label_set = recapturer.image_size, recapturer.label_set
    presets = preset_library()
    targets = {name: fit_keypoints(presets[name].keypoints, presets[name].frame, size) for name in POSES}
    sources = demo_sources(recapturer)
    colour = label_set.colorize
    sections: list[str] = []
    written: list[Path] = []

    rows = [[s.image] + [recapturer(s.image, targets[n], source_pose=s.keypoints, source_layout=s.layout).image
                         for n in POSES] for s in sources]
    written.append(_save(out, "poses.png", _grid(rows)))
    sections.append(_section("Pose and view changes", "Left: source (a SynthHumans person the model never saw). "
                             f"Then the target poses {', '.join(POSES)} (real DeepFashion test poses).",
                             [("poses.png", "source | " + " | ".join(POSES))]))

    source, target = sources[0], targets["front"]
    for title, specs, name, kind in (("Figure edits", FIGURES, "figure.png", "figure"),
                                     ("Clothing edits", CLOTHING, "clothing.png", "clothing")):
        results = [recapturer(source.image, target, source_pose=source.keypoints, source_layout=source.layout,
                              edits=LayoutEdits.parse(**{kind: [spec]})) for spec in specs]
        grid = _grid([[source.image] + [r.image for r in results], [colour(source.layout)] +
                      [colour(r.target_layout) for r in results]])
        written.append(_save(out, name, grid))
        sections.append(_section(title, "The predicted target layout is edited, then rendered (top: images, "
                                 "bottom: layouts).", [(name, "source | " + " | ".join(specs))]))

    result = recapturer(source.image, targets["walking"], source_pose=source.keypoints, source_layout=source.layout)
    torso = np.argwhere(np.isin(result.target_layout, [label_set.index(p) for p in label_set.names
                                                        if p in ("upper_clothes", "dress", "coat")]))
    pixel = tuple(int(v) for v in (torso[len(torso) // 2] if len(torso) else np.array(size) // 2))
    attention = recapturer.attention(result, pixel)
    marked = result.image.copy()
    marked[max(0, pixel[0] - 1):pixel[0] + 2, max(0, pixel[1] - 1):pixel[1] + 2] = (255, 0, 0)
    written.append(_save(out, "attention.png", _row([marked, attention.overlay]), scale=3))
    sections.append(_section("SAT attention (paper Fig. 4)", f"Where the target pixel {pixel} (red, left) takes "
                             "its appearance from in the source (right): only pixels of its own part.",
                             [("attention.png", "generated | attention over the source")]))

    from recapture.pipelines.video import interpolate_poses, recapture_pose_sequence

    keyframes = [targets[n] for n in ("front", "walking", "hand_up", "front")]
    video = recapture_pose_sequence(recapturer, source, interpolate_poses(keyframes, video_frames), out / "video.mp4",
                                    fps=8.0, progress=False)
    written.append(video.path)
    sections.append(f"<h2>Video</h2><p>{video.frames} frames at {video.fps:g} FPS driven by interpolated real poses."
                    "</p><video src='video.mp4' controls loop autoplay muted width='256'></video>")

    if wild:
        sections.append(_wild_section(recapturer, targets["hand_up"], out, written))
    model_info = html.escape(describe(recapturer.loaded)) if recapturer.loaded else "custom model"
    seconds = time.monotonic() - start
    page = (f"<!doctype html><meta charset='utf-8'><title>{TITLE}</title>"
            "<style>body{font-family:sans-serif;"
            "max-width:1100px;margin:auto}img{image-rendering:pixelated;max-width:100%}figure{margin:0}"
            ".row{display:flex;gap:12px;flex-wrap:wrap}</style><h1>Recapture demo</h1>"
            f"<p><b>Weights:</b> <code>{model_info}</code>. They were trained on SynthHumans (procedural people, "
            f"{size[0]}x{size[1]}, {label_set.name}) on a CPU; they are a demonstration of the method, not a model of "
            f"real photographs.</p><p>Written offline in {seconds:.1f} s.</p>" + "".join(sections))
    (out / "index.html").write_text(page, encoding="utf-8")
    return written


def _wild_section(recapturer: Recapturer, target: np.ndarray, out: Path, written: list[Path]) -> str:
    from skimage import data as skimage_data

    from recapture.pipelines.photo import PhotoModels, PhotoRequest, draw_keypoints, run_photo

    photo = skimage_data.astronaut()
    with PhotoModels(recapturer) as models:
        found = run_photo(PhotoRequest(source=photo, target=target), models)
    person_mask = found.prepared.segmented.person_mask
    mask = (np.clip(person_mask, 0, 1)[..., None] * 255).astype(np.uint8).repeat(3, axis=2)
    panels = {"wild_keypoints.png": draw_keypoints(found.photo, found.prepared.posed.keypoints), "wild_mask.png": mask,
              "wild_background.png": found.composited.background, "wild_composite.png": found.composite}
    for name, image in panels.items():
        written.append(_save(out, name, image, scale=1))
    layout = recapturer.label_set.colorize(found.result.source.layout)
    written.append(_save(out, "wild_model_frame.png", _row([found.result.source.image, layout, found.result.image]),
                         scale=3))
    captions = [("wild_keypoints.png", "estimated keypoints (BlazePose -> COCO-18)"),
                ("wild_mask.png", "person mask (selfie segmentation)"),
                ("wild_background.png", "background inpainted (OpenCV Telea)"),
                ("wild_composite.png", "new pose composited back"),
                ("wild_model_frame.png", f"model frame: crop | parsing ({found.prepared.parsed.parser}) | generated")]
    return _section("In the wild (scikit-image's astronaut photo)", "Pose estimation, person segmentation, "
                    "approximate parsing, background inpainting and compositing at full resolution. The person "
                    "is rendered by the SynthHumans-trained model, so it looks synthetic.", captions)
