"""``recapture demo``: the offline tour of everything Recapture does, written as ``index.html`` + images + MP4.

First *real people*: bundled CCP street photos (held out, Apache-2.0, ``assets/demo-photos``) re-posed,
made thinner and fatter and re-dressed through exactly the stages ``recapture edit`` runs
(:mod:`recapture.pipelines.photo`, the ``default`` model, the ``ccp`` parser), side by side with the input.
Then the *synthetic tour*: SynthHumans people the bundled model never saw (another seed than its training
data), with their exact keypoints and layouts, and real DeepFashion target poses from the preset library.
:func:`edit_photo` and the sheet helpers are shared with ``benchmarks/real_photos.py``.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from recapture.body.edits import LayoutEdits
from recapture.body.parts import LabelSet
from recapture.fileio import OutputPathError, check_output_dir
from recapture.data.synthetic import SHOWCASE_SEED
from recapture.hub import describe
from recapture.pipelines.edit import FATTER, THINNER
from recapture.pipelines.photo import (
    PhotoModels, PhotoOptions, PreparedPhoto, draw_keypoints, prepare_photo, render_photo,
)
from recapture.pipelines.poses import fit_keypoints, load_pose, preset_library
from recapture.pipelines.recapture import Recapturer, SourceInput

#: The page title, also how an earlier demo folder is recognised (and may be replaced).
TITLE = "Recapture demo"
POSES = ("front", "walking", "side", "back", "hand_up", "upper_body")
FIGURES = ("body=0.8", "body=1.0", "body=1.25", "arms=1.3", "legs=0.8")
CLOTHING = ("lower=skirt", "lower=shorts", "lower=pants", "upper=long_sleeves", "upper=coat")


@dataclass(frozen=True)
class DemoPhoto:
    """A bundled photo (file name in ``assets/demo-photos``), its preset target pose and clothing edit."""

    name: str
    pose: str
    clothing: str


#: The real people: CCP held-out photos 0909, 0911, 0939 (assets/demo-photos/README.md).
DEMO_PHOTOS = (DemoPhoto("ccp-0909.jpg", "walking", "upper=long_sleeves"),
               DemoPhoto("ccp-0911.jpg", "hand_up", "lower=pants"),
               DemoPhoto("ccp-0939.jpg", "walking", "lower=skirt"))


@dataclass(frozen=True)
class DemoReport:
    """What the demo wrote and how long it took."""

    out: Path
    index: Path
    files: tuple[Path, ...]
    seconds: float


@dataclass(frozen=True)
class EditedPhoto:
    """One photo and its edits. photo and every output: ``(H, W, 3)`` uint8 at the input's size, in the
    order of ``captions``; layouts: each output's model-frame target layout ``(h, w)``; background: the
    inpainted scene behind the re-posed output; seconds: all stages."""

    name: str
    pose: str
    photo: np.ndarray
    captions: tuple[str, ...]
    outputs: tuple[np.ndarray, ...]
    layouts: tuple[np.ndarray, ...]
    background: np.ndarray
    prepared: PreparedPhoto
    seconds: float

    @property
    def person_box(self) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end exclusive: the box of the input's person mask."""
        ys, xs = np.nonzero(self.prepared.segmented.person_mask > 0.5)
        return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1

    def summary(self) -> str:
        """Framing, people, parser and time in one line."""
        people = self.prepared.people
        return (f"framing {self.prepared.framed.extent}, {people} {'person' if people == 1 else 'people'} found, "
                f"parser {self.prepared.parsed.parser}, {self.seconds:.1f} s for the four edits")


def demo_photo_path(name: str) -> Path:
    """Path of a bundled demo photo; FileNotFoundError naming it when the package lacks it."""
    path = Path(str(resources.files("recapture") / "assets" / "demo-photos" / name))
    if not path.is_file():
        raise FileNotFoundError(f"demo photo {name} is not in the installed package ({path})")
    return path


def row_edits(clothing: str) -> tuple[tuple[str, LayoutEdits | None], ...]:
    """(caption, edits) of a row's four outputs: re-posed, thinner, fatter, re-dressed (``clothing``)."""
    return (("re-posed", None),
            (f"thinner (body={THINNER})", LayoutEdits.parse(figure=[f"body={THINNER}"])),
            (f"fatter (body={FATTER})", LayoutEdits.parse(figure=[f"body={FATTER}"])),
            (f"re-dressed ({clothing})", LayoutEdits.parse(clothing=[clothing])))


def edit_photo(models: PhotoModels, source: str | Path | np.ndarray, pose: str, clothing: str, name: str = "",
               options: PhotoOptions = PhotoOptions()) -> EditedPhoto:
    """``source`` re-posed to the preset ``pose`` as ``recapture edit`` does (decode .. frame once), then the
    same made thinner, fatter and re-dressed with ``clothing`` (geometric .. composite once each)."""
    start = time.perf_counter()
    prepared = prepare_photo(models, source, load_pose(pose).keypoints[None], options)
    rendered = [(caption, *render_photo(models, prepared, 0, edits, None, options)[::2])
                for caption, edits in row_edits(clothing)]  # (caption, geometry, composited)
    return EditedPhoto(name=name or Path(str(source)).name, pose=pose, photo=prepared.decoded.photo,
                       captions=tuple(c for c, _, _ in rendered), outputs=tuple(o.image for _, _, o in rendered),
                       layouts=tuple(g.target_layout for _, g, _ in rendered), background=rendered[0][2].background,
                       prepared=prepared, seconds=time.perf_counter() - start)


def labelled_row(images: list[np.ndarray], captions: list[str], height: int = 300, gap: int = 4,
                 caption_height: int = 14) -> np.ndarray:
    """Images scaled to ``height`` (aspect kept), side by side on white, each captioned above: ``(h, w, 3)``."""
    panels = []
    for image, caption in zip(images, captions, strict=True):
        picture = Image.fromarray(image)
        width = max(1, round(picture.width * height / picture.height))
        panel = Image.new("RGB", (width + gap, height + caption_height), "white")
        ImageDraw.Draw(panel).text((2, 1), caption, fill=(0, 0, 0))
        panel.paste(picture.resize((width, height), Image.LANCZOS), (0, caption_height))  # over any low ink
        panels.append(np.asarray(panel))
    return np.concatenate(panels, axis=1)


def stack_rows(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Rows of any widths stacked on white, left-aligned."""
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=255)
                           for row in rows], axis=0)


def stages_row(edited: EditedPhoto, label_set: LabelSet) -> np.ndarray:
    """The input with its keypoints | its parsing | the inpainted background | the re-posed result."""
    prepared = edited.prepared
    height, width = edited.photo.shape[:2]
    labels = np.asarray(Image.fromarray(prepared.parsed.labels).resize((width, height), Image.NEAREST))
    images = [draw_keypoints(edited.photo, prepared.posed.keypoints), label_set.colorize(labels),
              edited.background, edited.outputs[0]]
    return labelled_row(images, ["keypoints (BlazePose)", f"parsing ({prepared.parsed.parser})",
                                 "background under the new person", "re-posed"], height=260)


@dataclass(frozen=True)
class RealPeople:
    """The demo's real-people section: its HTML and the edited photos behind it."""

    html: str
    photos: tuple[EditedPhoto, ...]


def real_people_section(out: Path, written: list[Path], model: str = "default", parser: str = "ccp",
                        photos: tuple[DemoPhoto, ...] = DEMO_PHOTOS) -> RealPeople:
    """Write ``people-STEM.jpg`` per photo and ``people-stages.jpg`` into ``out`` (paths added to ``written``)."""
    import torch

    recapturer = Recapturer.from_pretrained(model)
    rows: list[tuple[str, str]] = []
    done: list[EditedPhoto] = []
    with PhotoModels(recapturer, parser) as models, torch.inference_mode():
        for photo in photos:
            edited = edit_photo(models, demo_photo_path(photo.name), photo.pose, photo.clothing, photo.name)
            done.append(edited)
            if not rows:
                _save(out, "people-stages.jpg", stages_row(edited, recapturer.label_set), 1, written)
            captions = ["input", f"re-posed ({photo.pose})", *edited.captions[1:], "layout asked (re-dressed)"]
            panels = [edited.photo, *edited.outputs, recapturer.label_set.colorize(edited.layouts[-1])]
            path = _save(out, f"people-{Path(photo.name).stem}.jpg", labelled_row(panels, captions), 1, written)
            rows.append((path.name, f"{photo.name}: {edited.summary()}"))
    rows.append(("people-stages.jpg", f"{photos[0].name}: the stages behind the re-posed photo"))
    weights = html.escape(describe(recapturer.loaded)) if recapturer.loaded else "custom model"
    text = ("Street photos from the CCP dataset (Apache-2.0; held out: no model was trained or tuned on them). Each "
            "row: the input, the person re-posed to a preset pose (with their own bone lengths, at their place and "
            "scale), the same made thinner, fatter and re-dressed, and last the re-dressed layout the model was asked "
            f"to render (model frame). This is what `recapture edit PHOTO --pose P` does, with the {model} model and "
            f"the {parser} parser; every output keeps the input's size.")
    section = _section("Real people", text, rows) + f"<p><b>Weights:</b> <code>{weights}</code></p>"
    return RealPeople(html=section, photos=tuple(done))


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


def _save(out: Path, name: str, image: np.ndarray, scale: int = 2, written: list[Path] | None = None) -> Path:
    path = out / name
    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path, **({"quality": 88} if path.suffix == ".jpg" else {}))
    if written is not None:
        written.append(path)
    return path


def _row(images: list[np.ndarray], gap: int = 2) -> np.ndarray:
    height = max(i.shape[0] for i in images)
    padded = [np.pad(i, ((0, height - i.shape[0]), (0, gap), (0, 0)), constant_values=255) for i in images]
    return np.concatenate(padded, axis=1)


def _grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    return stack_rows([_row(r) for r in rows], gap=2)


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
             video_frames: int = 8, photo_model: str = "default") -> DemoReport:
    """Write the demo; returns what was written. Fully offline. ``wild``: include the real people (photos
    through ``photo_model``); ``model``: the synthetic tour's model.

    Everything is written into a hidden sibling folder first, which replaces ``out`` only when complete:
    a failure (or a kill) leaves ``out`` as it was (the partial folder is removed on failure).
    """
    start = time.monotonic()
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)  # mkdtemp's 0700 would hide the demo from other users
    try:
        files = _write_demo(work, model, wild, video_frames, photo_model, start)
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


def _write_demo(out: Path, model: str, wild: bool, video_frames: int, photo_model: str, start: float) -> list[Path]:
    """Write every demo file into ``out``; returns the image and video files."""
    written: list[Path] = []
    sections = [real_people_section(out, written, photo_model).html] if wild else []
    recapturer = Recapturer.from_pretrained(model)
    size, label_set = recapturer.image_size, recapturer.label_set
    presets = preset_library()
    targets = {name: fit_keypoints(presets[name].keypoints, presets[name].frame, size) for name in POSES}
    sources = demo_sources(recapturer)
    colour = label_set.colorize
    model_info = html.escape(describe(recapturer.loaded)) if recapturer.loaded else "custom model"
    sections.append(f"<h2>Synthetic tour</h2><p><b>Weights:</b> <code>{model_info}</code>. They were trained on "
                    f"SynthHumans (procedural people, {size[0]}x{size[1]}, {label_set.name}) on a CPU; the sources "
                    "below are SynthHumans people they never saw.</p>")

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
    seconds = time.monotonic() - start
    page = (f"<!doctype html><meta charset='utf-8'><title>{TITLE}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
            "img[src$='.png']{image-rendering:pixelated}figure{margin:0}.row{display:flex;gap:12px;flex-wrap:wrap}"
            "</style><h1>Recapture demo</h1>"
            f"<p>Written offline in {seconds:.1f} s.</p>" + "".join(sections))
    (out / "index.html").write_text(page, encoding="utf-8")
    return written
