"""What the web editor accepts: uploaded images (checked before decoding), annotation rows of the files
the server was started with, and demo persons rendered by SynthHumans.

Nothing here opens a path that came from the browser, except the upload files Gradio itself wrote,
and only after :class:`UploadGuard` has confirmed they lie under Gradio's upload folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from recapture.body.parts import LabelSet, merge_lip20
from recapture.data.errors import FormatError
from recapture.data.formats import AnnotationTable, read_annotations
from recapture.pipelines.photo_io import HEIF_SUPPORTED, PhotoFile
from recapture.pipelines.poses import fit_keypoints, guess_frame
from recapture.pipelines.recapture import SourceInput

#: Image formats an upload may be in (Pillow format names; MPO: a camera's JPEG with a preview image; HEIF:
#: HEIC/HEIF photos, read through pillow-heif like ``recapture edit`` does).
IMAGE_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF"}
                                          | ({"HEIF"} if HEIF_SUPPORTED else set()))


class AppError(ValueError):
    """A request the editor refuses; the message is shown to the user as it is."""


@dataclass(frozen=True)
class UploadLimits:
    """Largest upload the editor decodes: ``max_bytes`` on disk, ``max_side`` pixels per side."""

    max_bytes: int = 10 * 1024 * 1024
    max_side: int = 4096

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_side < 1:
            raise ValueError(f"upload limits must be positive, got {self.max_bytes} bytes, {self.max_side} px")

    @property
    def megabytes(self) -> float:
        return self.max_bytes / (1024 * 1024)


class UploadGuard:
    """Admits only files under ``roots`` (Gradio's upload folder): a path typed or forged by a client
    elsewhere on the disk is refused without being opened."""

    def __init__(self, roots: Sequence[str | Path]) -> None:
        if not roots:
            raise ValueError("UploadGuard needs at least one upload folder")
        self.roots = tuple(Path(root).resolve() for root in roots)

    def check(self, path: str | Path | None) -> Path:
        """The resolved upload ``path``; AppError when missing or outside the upload folders."""
        if path is None or str(path) == "":
            raise AppError("no file was uploaded")
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise AppError("refused: that file was not uploaded through this page")
        if not resolved.is_file():
            raise AppError("the uploaded file is gone; upload it again")
        return resolved


def decode_upload(path: Path, limits: UploadLimits) -> PhotoFile:
    """An uploaded image decoded as the photo path decodes it (pixels ``(H, W, 3)`` uint8 RGB upright, its
    ICC profile and EXIF for the download); AppError for a file too large, not an image, an unsupported
    format, or too many pixels (checked from the header, before the pixels are decoded)."""
    from recapture.pipelines.photo_io import WildPhotoError, read_photo

    size = path.stat().st_size
    if size > limits.max_bytes:
        raise AppError(f"the file is too large: {size / 1024 / 1024:.1f} MB (at most {limits.megabytes:.0f} MB)")
    try:
        with Image.open(path) as header:
            kind, (width, height) = header.format, header.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise AppError("the uploaded file is not an image (use JPEG, PNG, WebP or HEIC)") from None
    if kind not in IMAGE_FORMATS:
        raise AppError(f"unsupported image type {kind}; use one of {', '.join(sorted(IMAGE_FORMATS))}")
    if width > limits.max_side or height > limits.max_side:
        raise AppError(f"the image is {width}x{height} pixels; at most {limits.max_side}x{limits.max_side}")
    if width < 8 or height < 8:
        raise AppError(f"the image is only {width}x{height} pixels")
    try:
        return read_photo(path)
    except WildPhotoError:
        raise AppError("the image could not be decoded (truncated or corrupt file)") from None


@dataclass(frozen=True)
class PoseRowFile:
    """One annotation CSV given on the command line, with the frame its keypoints live in."""

    name: str
    table: AnnotationTable
    frame: tuple[int, int]


class PoseRows:
    """Target poses from rows of annotation CSVs the server operator chose (``--pose-file``).

    A client names a row as ``ROW`` or ``FILE.csv:ROW``; ``FILE`` is matched against the file names
    loaded at start-up, never opened.
    """

    def __init__(self, paths: Sequence[str | Path] = ()) -> None:
        self.files: dict[str, PoseRowFile] = {}
        for path in map(Path, paths):
            if path.name in self.files:
                raise ValueError(f"two pose files are named {path.name}; rename one")
            frame, offset = guess_frame(path)
            try:
                table = read_annotations(path, offset=offset)
            except (OSError, FormatError) as err:
                raise ValueError(f"pose file {path}: {err}") from None
            if not len(table):
                raise ValueError(f"pose file {path} has no rows")
            self.files[path.name] = PoseRowFile(path.name, table, frame)

    def __bool__(self) -> bool:
        return bool(self.files)

    def example(self) -> str:
        """A valid ``FILE.csv:ROW`` (the first row of the first file), or "" when there are none."""
        for item in self.files.values():
            return f"{item.name}:{item.table.names[0]}"
        return ""

    def describe(self) -> str:
        return ", ".join(f"{item.name} ({len(item.table)} rows)" for item in self.files.values())

    def lookup(self, text: str, model_size: tuple[int, int]) -> np.ndarray:
        """``(18, 2)`` keypoints of row ``text`` fitted into ``model_size``; AppError naming the row."""
        text = (text or "").strip()
        if not self.files:
            raise AppError("this server was started without --pose-file, so no annotation rows are offered")
        if not text:
            raise AppError(f"type an annotation row, e.g. {self.example()}")
        if ".csv:" in text:
            file, _, row = text.rpartition(":")
            if file not in self.files:
                raise AppError(f"unknown pose file {file!r}; offered: {', '.join(self.files)}")
            candidates = [self.files[file]]
        else:
            row, candidates = text, list(self.files.values())
        for item in candidates:
            if row in item.table:
                return fit_keypoints(item.table.get(row), item.frame, model_size)
        raise AppError(f"no row {row!r} in {', '.join(c.name for c in candidates)}")


@dataclass(frozen=True)
class DemoSample:
    """A SynthHumans person in the model frame with its exact keypoints and layout."""

    name: str
    source: SourceInput


def demo_samples(image_size: tuple[int, int], label_set: LabelSet, count: int = 4,
                 seed: int | None = None) -> list[DemoSample]:
    """``count`` SynthHumans persons, front pose 0, plain background, rendered at ``image_size``.

    ``seed`` defaults to the showcase seed, whose people no bundled model trained on.
    """
    from recapture.data.synthetic import SHOWCASE_SEED, render_person, sample_identity, sample_shot

    seed = SHOWCASE_SEED if seed is None else seed
    samples = []
    for person in range(count):
        identity = sample_identity(seed, person)
        pose, background = sample_shot(seed, person, 0, "plain", 0.0)
        rendering = render_person(identity, pose, background, image_size)
        layout = rendering.layout if label_set.name == "lip20" else merge_lip20(rendering.layout, label_set.name)
        outfit = identity.outfit
        garments = [outfit.top] + ([] if outfit.top == "dress" else [outfit.bottom]) + (["coat"] if outfit.coat else [])
        name = f"person {person + 1}: {', '.join(garments)}"
        source = SourceInput(image=rendering.image, keypoints=rendering.keypoints.astype(np.float64),
                             layout=layout.astype(np.uint8))
        samples.append(DemoSample(name, source))
    return samples
