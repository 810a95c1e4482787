"""SynthHumans on disk: images, layouts, annotation and pair CSVs, invisible masks, edit splits and a
manifest, in the formats of docs/formats.md.

Every image is a pure function of ``(seed, person, pose)``: its identity comes from ``(seed, person)``
and its pose, view, framing and background from ``(seed, person, pose)``, so the files are
byte-identical for any number of workers. People are split into train and test by identity.
``write_preview`` draws a contact sheet (identities x poses, image beside its colourised layout, the
person's left joints blue, right joints red, centre joints yellow).
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_NAMES
from recapture.body.parts import LIP20, get_label_set, merge_lip20
from recapture.data.formats import layout_name, pair_name, write_annotations, write_layout, write_pairs
from recapture.data.errors import FormatError
from recapture.data.manifest import SplitSpec, read_manifest, write_manifest
from recapture.data.synthetic.people import Identity, sample_clothing_edit, sample_figure_edit, sample_identity
from recapture.data.synthetic.articulation import Articulation, sample_articulation
from recapture.data.synthetic.render import BACKGROUND_KINDS, Background, Rendering, render_person, sample_background
from recapture.data.synthetic.truth import EditRecord, invisible_mask, write_edits
from recapture.fileio import atomic_path, check_output_dir, check_output_file

SPLITS: tuple[str, ...] = ("train", "test", "edit_figure", "edit_clothing")
SIZES: tuple[tuple[int, int], ...] = ((256, 176), (128, 64))
#: Bounds of each side of ``--size`` (pixels): larger images are not what the renderer is for, and a
#: 20000x20000 request would be killed for memory.
MIN_SIDE, MAX_SIDE = 16, 1024


@dataclass(frozen=True)
class SynthConfig:
    """What ``recapture synth`` writes.

    ``people`` identities x ``poses`` images each at ``size`` (H, W); ``label_set`` lip20 | market7;
    ``test_fraction`` of the identities (at least one) form the test split; ``edits_per_person`` test
    targets per test identity get a figure and a clothing edit; ``start_method`` of the worker
    processes (None: fork where available, else spawn; the code is spawn-safe). ``out`` must be empty or
    absent; ``overwrite`` clears it first, but only when it holds a SynthHumans manifest.
    """

    out: Path
    people: int
    poses: int
    size: tuple[int, int] = (256, 176)
    label_set: str = "lip20"
    seed: int = 0
    workers: int = 1
    background: str = "plain"
    test_fraction: float = 0.2
    edits_per_person: int = 2
    crop_probability: float = 0.2
    supersample: int = 2
    start_method: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if self.people < 2 or self.poses < 2:
            raise ValueError(f"need at least 2 people and 2 poses (got {self.people} and {self.poses})")
        if self.label_set not in ("lip20", "market7"):
            raise ValueError(f"label_set must be lip20 or market7, got {self.label_set!r}")
        if self.background not in BACKGROUND_KINDS:
            raise ValueError(f"background must be one of {', '.join(BACKGROUND_KINDS)}, got {self.background!r}")
        check_size(self.size)
        if self.workers < 1 or self.supersample < 1 or not 0 < self.test_fraction < 1:
            raise ValueError(f"bad workers/supersample/test_fraction in {self}")


@dataclass(frozen=True)
class SplitFiles:
    """Names of one split's rows: images, their keypoints ``(N, 18, 2)``, pairs and edit records."""

    names: tuple[str, ...] = ()
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 18, 2), np.int64))
    pairs: tuple[tuple[str, str], ...] = ()
    edits: tuple[EditRecord, ...] = ()

    def __add__(self, other: "SplitFiles") -> "SplitFiles":
        return SplitFiles(self.names + other.names, np.concatenate([self.keypoints, other.keypoints]),
                          self.pairs + other.pairs, self.edits + other.edits)


@dataclass(frozen=True)
class SynthSummary:
    """What was written: the manifest, image counts per split and the wall time."""

    manifest: Path
    images: dict[str, int]
    seconds: float

    @property
    def total_images(self) -> int:
        return sum(self.images.values())


def image_name(person: int, pose: int, suffix: str = "") -> str:
    """``p0007_v03.png`` (``suffix`` for edited re-renders: ``p0007_v03_figure.png``)."""
    return f"p{person:04d}_v{pose:02d}{'_' + suffix if suffix else ''}.png"


def split_spec(split: str) -> SplitSpec:
    """Folder and file names of ``split`` (relative to the manifest)."""
    extras = {"invisible": f"{split}_invisible"} if split == "test" else {}
    if split.startswith("edit_"):
        extras = {"edits": f"edits-{split}.csv"}
    return SplitSpec(images=split, layouts=f"{split}_layouts", annotations=f"annotations-{split}.csv",
                     pairs=f"pairs-{split}.csv", extras=extras)


def test_people(seed: int, people: int, fraction: float) -> frozenset[int]:
    """The identities of the test split (a seeded choice of ``max(1, round(fraction * people))``)."""
    count = min(max(1, int(round(fraction * people))), people - 1)
    order = np.random.default_rng([int(seed), 0x7E57]).permutation(people)
    return frozenset(int(p) for p in order[:count])


def sample_shot(seed: int, person: int, pose: int, background: str, crop_probability: float) -> tuple[Articulation, Background]:
    """Articulation and background of image ``(person, pose)``, from ``(seed, person, pose)`` only."""
    rng = np.random.default_rng([int(seed), int(person), int(pose), 0x5407])
    return sample_articulation(rng, crop_probability), sample_background(rng, background)


class _PersonWriter:
    """Renders and writes every file of one person (all of its pairs stay within the person)."""

    def __init__(self, config: SynthConfig, person: int, split: str) -> None:
        self.config = config
        self.person = person
        self.split = split
        self.identity = sample_identity(config.seed, person)
        self.label_set = get_label_set(config.label_set)

    def _render(self, identity: Identity, pose_index: int) -> Rendering:
        c = self.config
        pose, background = sample_shot(c.seed, self.person, pose_index, c.background, c.crop_probability)
        rendering = render_person(identity, pose, background, c.size, c.supersample)
        if c.label_set != "lip20":
            rendering = Rendering(rendering.image, merge_lip20(rendering.layout, c.label_set), rendering.keypoints)
        return rendering

    def _write(self, split: str, name: str, rendering: Rendering) -> None:
        spec = split_spec(split)
        _write_png(self.config.out / spec.images / name, rendering.image[..., ::-1])
        write_layout(self.config.out / spec.layouts / layout_name(name), rendering.layout, self.label_set)

    def run(self) -> dict[str, SplitFiles]:
        renderings = [self._render(self.identity, k) for k in range(self.config.poses)]
        names = tuple(image_name(self.person, k) for k in range(self.config.poses))
        for name, rendering in zip(names, renderings):
            self._write(self.split, name, rendering)
        pairs = tuple((names[i], names[j]) for i in range(len(names)) for j in range(len(names)) if i != j)
        out = {self.split: SplitFiles(names, np.stack([r.keypoints for r in renderings]), pairs)}
        if self.split == "test":
            folder = self.config.out / split_spec("test").extras["invisible"]
            for i, j in ((names.index(s), names.index(t)) for s, t in pairs):
                mask = invisible_mask(renderings[i].layout, renderings[j].layout)
                _write_png(folder / pair_name(names[i], names[j]), mask.astype(np.uint8) * 255)
            out.update(self._edits(names, renderings))
        return out

    def _edits(self, names: tuple[str, ...], renderings: list[Rendering]) -> dict[str, SplitFiles]:
        """Figure and clothing edit pairs: source pose 0 -> targets 1..k re-rendered with an edit."""
        targets = range(1, min(self.config.edits_per_person, self.config.poses - 1) + 1)
        out: dict[str, SplitFiles] = {}
        for split in ("edit_figure", "edit_clothing"):
            self._write(split, names[0], renderings[0])
            rows = [SplitFiles((names[0],), renderings[0].keypoints[None])]
            for k in targets:
                rng = np.random.default_rng([self.config.seed, self.person, k, 0xED17])
                if split == "edit_figure":
                    edit = sample_figure_edit(rng)
                    record = EditRecord(names[0], image_name(self.person, k, "figure"), edit.part_group, edit.factor)
                    edited = edit.apply(self.identity)
                else:
                    change = sample_clothing_edit(rng, self.identity)
                    record = EditRecord(names[0], image_name(self.person, k, "clothing"),
                                        garment_from=change.garment_from, garment_to=change.garment_to)
                    edited = change.apply(self.identity)
                rendering = self._render(edited, k)
                self._write(split, record.target, rendering)
                pair = ((names[0], record.target),)
                rows.append(SplitFiles((record.target,), rendering.keypoints[None], pair, (record,)))
            out[split] = sum(rows[1:], rows[0])
        return out


def _write_png(path: Path, pixels: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise OSError(f"cannot encode {path}")
    path.write_bytes(encoded.tobytes())


def _person_job(job: tuple[SynthConfig, int, str]) -> dict[str, SplitFiles]:
    """Worker entry point (top level, picklable arguments: spawn-safe)."""
    config, person, split = job
    return _PersonWriter(config, person, split).run()


def _start_method(config: SynthConfig) -> str:
    if config.start_method is not None:
        return config.start_method
    fork_ok = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
    return "fork" if fork_ok else "spawn"


def prepare_out(out: Path, overwrite: bool) -> None:
    """Make sure ``out`` is an empty folder to write into (created if absent). A non-empty folder is refused
    unless ``overwrite`` and it holds a SynthHumans ``manifest.yaml``: then its contents are removed."""
    check_output_dir(out, "--out")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        raise ValueError(f"--out {out} is not empty; give a new folder, or --overwrite to replace an earlier "
                         "SynthHumans dataset there")
    try:
        name = read_manifest(out / "manifest.yaml").name
    except FormatError:
        name = None
    if name != "synthhumans":
        raise ValueError(f"--overwrite refused: {out} holds no SynthHumans manifest.yaml, so it is not cleared "
                         "(it may hold other files); give a new or empty folder")
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def generate(config: SynthConfig) -> SynthSummary:
    """Write the dataset described by ``config`` under ``config.out`` and its ``manifest.yaml``."""
    start = time.perf_counter()
    prepare_out(config.out, config.overwrite)
    tests = test_people(config.seed, config.people, config.test_fraction)
    splits = {split: split_spec(split) for split in SPLITS}
    for spec in splits.values():
        for folder in (spec.images, spec.layouts, *(v for k, v in spec.extras.items() if k == "invisible")):
            (config.out / folder).mkdir(parents=True, exist_ok=True)
    jobs = [(config, p, "test" if p in tests else "train") for p in range(config.people)]
    if config.workers > 1:
        context = multiprocessing.get_context(_start_method(config))
        with context.Pool(min(config.workers, len(jobs))) as pool:
            results = list(pool.imap(_person_job, jobs, chunksize=1))
    else:
        results = [_person_job(job) for job in jobs]
    merged = {split: sum((r[split] for r in results if split in r), SplitFiles()) for split in SPLITS}
    for split, files in merged.items():
        spec = splits[split]
        write_annotations(config.out / spec.annotations, files.names, files.keypoints)
        write_pairs(config.out / spec.pairs, files.pairs)
        if "edits" in spec.extras:
            write_edits(config.out / spec.extras["edits"], split.removeprefix("edit_"), files.edits)
    manifest = config.out / "manifest.yaml"
    write_manifest(manifest, "synthhumans", config.label_set, config.size, splits)
    return SynthSummary(manifest, {s: len(f.names) for s, f in merged.items()}, time.perf_counter() - start)


_SIDE_COLOURS = {"left": (40, 90, 255), "right": (255, 40, 40)}
_CENTRE_COLOUR = (255, 220, 0)


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` if both sides lie in [MIN_SIDE, MAX_SIDE]; ValueError naming the bounds otherwise."""
    if len(size) != 2 or not all(MIN_SIDE <= int(v) <= MAX_SIDE for v in size):
        raise ValueError(f"size {size[0]}x{size[1] if len(size) > 1 else '?'} is out of bounds: each side must lie "
                         f"in {MIN_SIDE}..{MAX_SIDE} pixels (e.g. 256x176 or 128x64)")
    return int(size[0]), int(size[1])


def parse_size(text: str) -> tuple[int, int]:
    """``"256x176"`` -> ``(256, 176)`` (H x W), each side in [MIN_SIDE, MAX_SIDE]; ValueError otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size must look like HxW, e.g. 256x176, got {text!r}")
    return check_size((int(parts[0]), int(parts[1])))


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int = 1) -> np.ndarray:
    """Copy of ``(H, W, 3)`` RGB ``image`` with the present ``(18, 2)`` y/x keypoints drawn as dots."""
    out = image.copy()
    for name, (y, x) in zip(KEYPOINT_NAMES, np.asarray(keypoints)):
        if y < 0 or x < 0:
            continue
        colour = _SIDE_COLOURS.get(name.split("_")[0], _CENTRE_COLOUR)
        cv2.circle(out, (int(x), int(y)), radius, colour, thickness=-1)
    return out


def contact_sheet(seed: int = 0, size: tuple[int, int] = (256, 176), people: int = 4, poses: int = 5,
                  background: str = "plain", supersample: int = 2) -> np.ndarray:
    """``(people * H, poses * 2 * W, 3)`` uint8 RGB sheet of the first ``people`` identities of ``seed``."""
    rows = []
    radius = max(1, size[0] // 100)
    for person in range(people):
        identity = sample_identity(seed, person)
        cells = []
        for pose_index in range(poses):
            pose, scene = sample_shot(seed, person, pose_index, background, crop_probability=0.2)
            rendering = render_person(identity, pose, scene, size, supersample)
            layout = draw_keypoints(LIP20.colorize(rendering.layout), rendering.keypoints, radius)
            cells += [rendering.image, layout]
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def write_preview(path: str | Path, seed: int = 0, size: tuple[int, int] = (256, 176), people: int = 4,
                  poses: int = 5, background: str = "plain") -> Path:
    """Write :func:`contact_sheet` as a PNG at ``path``; returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--preview {path}: use a .png file name")
    check_output_file(path, "--preview")
    sheet = contact_sheet(seed, check_size(size), people, poses, background)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(sheet[..., ::-1])):
            raise OSError(f"cannot write preview {path}")
    return path
