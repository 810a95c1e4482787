"""Readers and writers for the pose-transfer literature's files (see docs/formats.md).

* annotation CSV: ``name:keypoints_y:keypoints_x`` header, rows ``name: [18 ints]: [18 ints]``;
* pairs CSV: ``from,to`` header, one pair of image names a row;
* layout PNG: one single-channel (``L`` or palette ``P``) label map per image;
* images: any format Pillow reads, returned as ``(H, W, 3)`` uint8 RGB (:func:`read_image`, the one decoder).

Every malformed input raises :class:`FormatError` naming the file, the 1-based line (the header is
line 1) and the field (:mod:`recapture.data.errors`). The manifest lives in :mod:`recapture.data.manifest`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageCms, ImageOps

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import LabelSet
from recapture.data.errors import FormatError
from recapture.fileio import atomic_path, atomic_write_text

__all__ = [
    "ANNOTATION_HEADER", "PAIRS_HEADER", "FormatError", "AnnotationTable", "read_annotations",
    "write_annotations", "read_pairs", "write_pairs", "read_layout", "write_layout", "layout_name",
    "pair_name", "read_image", "MAX_IMAGE_PIXELS", "open_image", "to_rgb",
]

ANNOTATION_HEADER = "name:keypoints_y:keypoints_x"
PAIRS_HEADER = "from,to"
_INT = re.compile(r"\s*-?[0-9]{1,12}\s*")
_LIST = re.compile(rf"{_INT.pattern}(?:,{_INT.pattern}){{{NUM_KEYPOINTS - 1}}}")


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (BOM and CRLF tolerated) or FormatError."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise FormatError(path, f"cannot read file ({exc.strerror or exc})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise FormatError(path, "empty file or empty header line", line=1)
    return lines


def _check_header(path: Path, line: str, expected: str) -> None:
    if "".join(line.split()) != expected:
        raise FormatError(path, f"bad header {line[:80]!r}, expected {expected!r}", line=1, field="header")


@dataclass(frozen=True, eq=False)
class AnnotationTable:
    """Keypoints of named images: ``keypoints[i]`` is the ``(18, 2)`` y/x of ``names[i]`` (-1 missing).

    ``keypoints`` is a read-only int64 array (copy before editing).
    """

    names: tuple[str, ...]
    keypoints: np.ndarray
    path: Path | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kp = np.array(self.keypoints)
        if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 2) or len(kp) != len(self.names):
            raise ValueError(f"keypoints must be ({len(self.names)}, {NUM_KEYPOINTS}, 2), got {kp.shape}")
        if kp.size and not np.issubdtype(kp.dtype, np.integer):
            raise ValueError(f"keypoints must be integers, got {kp.dtype}")
        kp = kp.astype(np.int64)
        kp.setflags(write=False)
        object.__setattr__(self, "keypoints", kp)
        index = {name: i for i, name in enumerate(self.names)}
        if len(index) != len(self.names):
            raise ValueError("annotation names must be unique")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def get(self, name: str) -> np.ndarray:
        """``(18, 2)`` int64 keypoints of ``name``; FormatError naming the file if it has no row."""
        try:
            return self.keypoints[self._index[name]]
        except KeyError:
            raise FormatError(self.path, f"no annotation row for image {name!r}") from None

    def missing(self) -> np.ndarray:
        """``(N, 18)`` bool, True where a joint is missing."""
        return (self.keypoints == -1).any(axis=-1)


def _check_ints(path: Path, number: int, text: str, field_name: str) -> None:
    """FormatError unless ``text`` is 18 comma-separated integers."""
    if _LIST.fullmatch(text) is not None:
        return
    items = text.split(",")
    if len(items) != NUM_KEYPOINTS:
        raise FormatError(path, f"expected {NUM_KEYPOINTS} integers, found {len(items)}", number, field_name)
    bad = next(item for item in items if not _INT.fullmatch(item))
    raise FormatError(path, f"not an integer: {bad.strip()[:40]!r}", number, field_name)


def read_annotations(path: str | Path, offset: tuple[int, int] = (0, 0)) -> AnnotationTable:
    """Read an annotation CSV.

    Args:
        path: the CSV file.
        offset: ``(y, x)`` added to every present joint (e.g. ``(0, -40)`` maps DeepFashion's padded
            256x256 frame to the 256x176 crop). A joint whose coordinate becomes negative lies outside
            the frame and is marked missing, since -1 is the missing marker.

    Returns:
        An :class:`AnnotationTable` with ``(N, 18, 2)`` int64 keypoints; a joint with either coordinate
        -1 in the file is missing in both.
    """
    path = Path(path)
    lines = _read_lines(path)
    _check_header(path, lines[0], ANNOTATION_HEADER)
    names: list[str] = []
    numbers: list[int] = []
    lists: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) != 3:
            field_name = ("keypoints_y", "keypoints_x", "keypoints_x")[min(len(fields), 3) - 1]
            raise FormatError(path, f"expected 3 colon-separated fields 'name: [18 ints]: [18 ints]', found "
                                    f"{len(fields)}", number, field_name)
        name = fields[0].strip()
        if not name:
            raise FormatError(path, "empty image name", number, "name")
        if name in first_line:
            raise FormatError(path, f"duplicate name {name!r} (first on line {first_line[name]})", number, "name")
        first_line[name] = number
        for text, field_name in ((fields[1], "keypoints_y"), (fields[2], "keypoints_x")):
            text = text.strip()
            if len(text) < 2 or text[0] != "[" or text[-1] != "]":
                raise FormatError(path, f"expected a bracketed list, got {text[:40]!r}", number, field_name)
            _check_ints(path, number, text[1:-1], field_name)
            lists.append(text[1:-1])
        names.append(name)
        numbers.append(number)
    values = np.fromstring(",".join(lists), dtype=np.int64, sep=",") if lists else np.zeros(0, np.int64)
    if values.size != 2 * NUM_KEYPOINTS * len(names):
        raise FormatError(path, f"parsed {values.size} integers for {len(names)} rows")
    keypoints = np.ascontiguousarray(values.reshape(len(names), 2, NUM_KEYPOINTS).transpose(0, 2, 1))
    below = np.argwhere(keypoints < -1)
    if len(below):
        row, joint, axis = below[0]
        raise FormatError(path, f"coordinate {keypoints[row, joint, axis]} < -1 (-1 marks a missing joint)",
                          numbers[row], ("keypoints_y", "keypoints_x")[axis])
    missing = (keypoints == -1).any(axis=-1)
    if tuple(offset) != (0, 0):
        keypoints = keypoints + np.asarray(offset, dtype=np.int64)
        missing |= (keypoints < 0).any(axis=-1)
    keypoints[missing] = -1
    return AnnotationTable(tuple(names), keypoints, path)


def write_annotations(path: str | Path, names: Sequence[str], keypoints: np.ndarray) -> None:
    """Write ``names`` and ``(N, 18, 2)`` integer y/x ``keypoints`` (-1 missing) in the literature's format."""
    kp = np.asarray(keypoints)
    names = list(names)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 2) or len(kp) != len(names):
        raise ValueError(f"keypoints must be ({len(names)}, {NUM_KEYPOINTS}, 2), got {kp.shape}")
    if kp.size and not np.array_equal(kp, np.round(kp)):
        raise ValueError("keypoints must be integer pixel coordinates")
    kp = kp.astype(np.int64)
    kp[(kp == -1).any(axis=-1)] = -1
    if kp.size and kp.min() < -1:
        raise ValueError("keypoint coordinates must be >= 0 (or -1 for missing)")
    _check_names(names, forbidden=":\n\r")
    out = [ANNOTATION_HEADER]
    for name, row in zip(names, kp):
        ys = ", ".join(str(v) for v in row[:, 0].tolist())
        xs = ", ".join(str(v) for v in row[:, 1].tolist())
        out.append(f"{name}: [{ys}]: [{xs}]")
    atomic_write_text(path, "\n".join(out) + "\n")


def _check_names(names: Sequence[str], forbidden: str, unique: bool = True) -> None:
    seen: set[str] = set()
    for name in names:
        if not name or name != name.strip() or any(c in name for c in forbidden):
            raise ValueError(f"invalid image name {name!r} (empty, padded, or contains one of {forbidden!r})")
        if unique and name in seen:
            raise ValueError(f"duplicate image name {name!r}")
        seen.add(name)


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Read a pairs CSV (header ``from,to``) into a list of ``(source_name, target_name)``."""
    path = Path(path)
    lines = _read_lines(path)
    _check_header(path, lines[0], PAIRS_HEADER)
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2:
            raise FormatError(path, f"expected 2 comma-separated names, found {len(fields)}", number,
                              "to" if len(fields) < 2 else "from,to")
        source, target = fields[0].strip(), fields[1].strip()
        for value, field_name in ((source, "from"), (target, "to")):
            if not value:
                raise FormatError(path, "empty image name", number, field_name)
        pairs.append((source, target))
    return pairs


def write_pairs(path: str | Path, pairs: Sequence[tuple[str, str]]) -> None:
    """Write ``(source_name, target_name)`` pairs with the ``from,to`` header."""
    out = [PAIRS_HEADER]
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"a pair needs 2 names, got {pair!r}")
        _check_names(pair, forbidden=",\n\r", unique=False)
        out.append(f"{pair[0]},{pair[1]}")
    atomic_write_text(path, "\n".join(out) + "\n")


def layout_name(image_name: str) -> str:
    """File name of an image's layout: ``"x.jpg" -> "x.png"``."""
    return Path(image_name).stem + ".png"


def pair_name(source_name: str, target_name: str) -> str:
    """File name of per-pair data: ``("a.jpg", "b.jpg") -> "a___b.png"``."""
    return f"{Path(source_name).stem}___{Path(target_name).stem}.png"


#: Largest image decoded, in pixels (100 megapixels, 300 MB as RGB; the photo limit too): checked from the header
#: before any pixel is decoded, so a hostile or mistaken 20000x20000 file is refused, not decoded.
MAX_IMAGE_PIXELS = 100_000_000
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def open_image(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image, check its size from the header, then decode it fully; FormatError naming the file."""
    try:
        image = Image.open(path)
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except IsADirectoryError:
        raise FormatError(path, "is a folder, not an image") from None
    except Image.DecompressionBombError as exc:  # Pillow's own header check, far above ours
        raise FormatError(path, f"image is over {max_pixels / 1e6:.0f} megapixels ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise FormatError(path, f"cannot decode image ({exc})") from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        image.close()
        raise FormatError(path, f"image is {width}x{height} pixels; images must be non-empty and at most "
                                f"{max_pixels / 1e6:.0f} megapixels")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        image.close()
        raise FormatError(path, f"cannot decode image ({exc})") from None
    return image


def to_rgb(image: Image.Image, path: Path | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 of any decoded mode: 16-bit and 32-bit integer greyscale scaled by their bit
    depth, float greyscale read as [0, 1], transparency composited on white, CMYK through its ICC profile
    (to sRGB) when it has one."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise FormatError(path, f"{int((~np.isfinite(values)).sum())} pixels are NaN or infinite")
        if image.mode == "F":
            values = values * 255.0 if values.size and values.max() <= 1.0 else values
        elif image.mode == "I":
            values = values / 257.0 if values.size and values.max() > 255 else values
        else:
            values = values / 257.0
        grey = np.clip(np.round(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
            image = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: Pillow's plain conversion below
    return np.array(image.convert("RGB"), dtype=np.uint8)


def read_image(path: str | Path, orient: bool = False) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of an image file: the project's one image decoder.

    Any format Pillow reads (and HEIC); grey, palette, CMYK and 16-bit images become RGB at their true
    intensities; transparent pixels are composited on white; ``orient`` applies the EXIF orientation
    (photos). FormatError for a missing, truncated or corrupt file, or one over :data:`MAX_IMAGE_PIXELS`.
    """
    path = Path(path)
    with open_image(path) as image:
        if orient:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image, path)


def read_layout(path: str | Path, num_parts: int | None = None) -> np.ndarray:
    """``(H, W)`` uint8 part labels of a single-channel (``L`` or ``P``) PNG.

    Palette PNGs are read by their indices. With ``num_parts``, labels ``>= num_parts`` raise FormatError.
    """
    path = Path(path)
    with open_image(path) as image:
        if image.mode not in ("L", "P"):
            raise FormatError(path, f"layout must be a single-channel L or P image, got mode {image.mode}")
        labels = np.array(image, dtype=np.uint8)
    if num_parts is not None and labels.size and int(labels.max()) >= num_parts:
        bad = int(labels.max())
        raise FormatError(path, f"part label {bad} out of range for {num_parts} parts "
                                f"({int((labels >= num_parts).sum())} pixels)")
    return labels


def write_layout(path: str | Path, labels: np.ndarray, label_set: LabelSet | None = None) -> None:
    """Write ``(H, W)`` integer labels as a PNG: ``P`` mode with ``label_set``'s palette, else ``L``."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an (H, W) integer array, got {labels.dtype} {labels.shape}")
    limit = 256 if label_set is None else label_set.num_parts
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= limit):
        raise ValueError(f"labels must lie in [0, {limit}), found [{int(labels.min())}, {int(labels.max())}]")
    data = np.ascontiguousarray(labels, dtype=np.uint8)
    height, width = data.shape
    if label_set is None:
        image = Image.frombytes("L", (width, height), data.tobytes())
    else:
        image = Image.frombytes("P", (width, height), data.tobytes())
        image.putpalette([channel for colour in label_set.palette for channel in colour])
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
