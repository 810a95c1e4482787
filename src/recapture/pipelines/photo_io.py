"""Photo files in and out for the real-photo path: the *decode* and *encode* stages' file handling.

Reading: any format Pillow opens, plus HEIC/HEIF (pillow-heif) and WebP; EXIF orientation applied;
CMYK (through its ICC profile when it has one), palette, grayscale, alpha (composited on white) and
16-bit images become 8-bit sRGB-ish RGB; more than :data:`MAX_PIXELS` pixels is refused before the
pixels are decoded. The ICC profile and EXIF block come along so that the output can carry them.

Writing: the suffix picks the format (``.jpg/.jpeg``, ``.png``, ``.webp``, ``.tif/.tiff``, ``.bmp``);
the input's ICC profile and EXIF are carried over (orientation reset to 1, since the pixels are stored
upright) with ``Software: Recapture`` and an "edited with Recapture" image description; JPEG and WebP
take ``quality``. The file appears atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recapture.data.formats import MAX_IMAGE_PIXELS, to_rgb
from recapture.fileio import atomic_path

#: Photos with more pixels than this are refused (about a 100-megapixel camera; the project's one limit).
MAX_PIXELS = MAX_IMAGE_PIXELS
#: Output suffix -> Pillow format.
OUTPUT_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP"}
SOFTWARE = "Recapture"
EDITED = "edited with Recapture"
_ORIENTATION, _SOFTWARE, _DESCRIPTION = 0x0112, 0x0131, 0x010E


class WildPhotoError(ValueError):
    """A photo that cannot be used: unreadable, too large, no person, too little of a person."""


def _register_heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


HEIF_SUPPORTED = _register_heif()


@dataclass(frozen=True)
class PhotoFile:
    """A decoded photo: ``pixels`` ``(H, W, 3)`` uint8 RGB, upright; the file's ICC profile (None when
    the pixels were converted to sRGB or it had none) and EXIF bytes (orientation reset), its format."""

    pixels: np.ndarray
    icc_profile: bytes | None = None
    exif: bytes | None = None
    format: str | None = None
    path: Path | None = None


def _to_rgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """RGB image (the project's one pixel decoder, :func:`recapture.data.formats.to_rgb`) and whether the
    ICC profile still describes it (not after CMYK was converted)."""
    return Image.fromarray(to_rgb(image)), image.mode != "CMYK"


def read_photo(path: str | Path) -> PhotoFile:
    """Decode an image file (see the module docstring); WildPhotoError naming the file otherwise."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89.5 MP on; our own limit (MAX_PIXELS) is the one that speaks, once, below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise WildPhotoError(f"{path}: {image.width}x{image.height} is {image.width * image.height / 1e6:.0f} "
                                     f"megapixels; at most {MAX_PIXELS / 1e6:.0f} are accepted (resize it first)")
            image.load()
            kind = image.format
            exif = image.getexif()
            upright = ImageOps.exif_transpose(image)
            rgb, keep_icc = _to_rgb(upright)
            icc = image.info.get("icc_profile") if keep_icc else None
    except FileNotFoundError:
        raise WildPhotoError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise WildPhotoError(f"{path}: is a folder, not a photo") from None
    except Image.DecompressionBombError:  # Pillow refuses from 179 MP on, far above MAX_PIXELS
        raise WildPhotoError(f"{path}: more than {MAX_PIXELS / 1e6:.0f} megapixels; at most "
                             f"{MAX_PIXELS / 1e6:.0f} are accepted (resize it first)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, WildPhotoError):
            raise
        hint = "" if HEIF_SUPPORTED or path.suffix.lower() not in (".heic", ".heif") else " (install pillow-heif)"
        raise WildPhotoError(f"{path}: cannot read the photo ({error}){hint}") from None
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    pixels = np.asarray(rgb, dtype=np.uint8).copy()
    return PhotoFile(pixels=pixels, icc_profile=icc or None, exif=exif.tobytes() if len(exif) else None,
                     format=kind, path=path)


def as_photo_file(photo: np.ndarray | PhotoFile | str | Path) -> PhotoFile:
    """A PhotoFile from a path, an ``(H, W, 3)`` uint8 array or a PhotoFile."""
    if isinstance(photo, PhotoFile):
        return photo
    if isinstance(photo, (str, Path)):
        return read_photo(photo)
    pixels = np.asarray(photo)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or 0 in pixels.shape:
        raise ValueError(f"photo must be a non-empty (H, W, 3) uint8 RGB array, got {pixels.dtype} {pixels.shape}")
    return PhotoFile(pixels=pixels)


def output_format(path: str | Path) -> str:
    """Pillow format of an output path's suffix; ValueError naming the accepted suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: unknown output type {suffix or '(no suffix)'!r}; use one of "
                         f"{', '.join(sorted(OUTPUT_FORMATS))}")
    return OUTPUT_FORMATS[suffix]


def _output_exif(like: PhotoFile | None) -> Image.Exif:
    exif = Image.Exif()
    if like is not None and like.exif:
        exif.load(like.exif)
    exif[_ORIENTATION] = 1
    exif[_SOFTWARE] = SOFTWARE
    description = str(exif.get(_DESCRIPTION, "")).strip()
    exif[_DESCRIPTION] = description if EDITED in description else (f"{description} ({EDITED})" if description
                                                                     else EDITED)
    return exif


def write_photo(path: str | Path, pixels: np.ndarray, like: PhotoFile | None = None, quality: int = 95) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` uint8) atomically with ``like``'s ICC profile and EXIF."""
    path = Path(path)
    kind = output_format(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    image = Image.fromarray(np.ascontiguousarray(pixels))
    options: dict[str, object] = {}
    if kind in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["exif"] = _output_exif(like).tobytes()
        if like is not None and like.icc_profile and image.mode == "RGB":
            options["icc_profile"] = like.icc_profile
    if kind in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    with atomic_path(path) as temporary:
        image.save(temporary, format=kind, **options)
    return path


def unique_stems(paths: list[Path] | tuple[Path, ...]) -> list[str]:
    """Output names of batch inputs (docs/cli.md): each input's stem; a stem already taken (compared
    case-insensitively) gets ``-2``, ``-3``, ... in input order (``a/me.jpg``, ``b/me.png`` -> ``me``, ``me-2``)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        stem = Path(path).stem
        name, number = stem, 1
        while name.lower() in taken:
            number += 1
            name = f"{stem}-{number}"
        taken.add(name.lower())
        names.append(name)
    return names
