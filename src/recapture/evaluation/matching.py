"""Which generated file goes with which real image, and how both are read.

Without a pairs CSV a generated file matches the real image of the same name, else of the same stem
(``x.png`` <-> ``x.jpg``), else it is read as a pair name and matched to its target.
With a pairs CSV each ``(from, to)`` row is looked up among the generated files under the pair-name
conventions of the literature's code (``a``/``b``: the source/target name with or without extension):

========================  ==============================================  ==========================
convention                file name                                       written by
========================  ==============================================  ==========================
``a___b``                 ``from-stem___to-stem.png``                     Recapture, SynthHumans
``a___b_vis``             ``from.jpg___to.jpg_vis.jpg`` (5-panel strip)   PATN, XingGAN, ADGAN
``a_2_b_vis``             ``from-stem_2_to-stem_vis.png``                 GFLA, PISE, NTED, PIDM
``a_b``                   ``from.jpg_to.jpg.png`` (3-panel strip)         Deformable GAN
========================  ==============================================  ==========================

Every separator (``___``, ``_2_``, ``_``) is tried with and without the ``_vis`` suffix. A pair that
matches no file, or more than one, is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from recapture.data.errors import FormatError
from recapture.data.formats import read_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
PAIR_SEPARATORS = ("___", "_2_", "_")
PAIR_SUFFIXES = ("", "_vis")


class MatchingError(ValueError):
    """Generated and real files cannot be put in pairs; the message names the files."""


@dataclass(frozen=True)
class MatchedPair:
    """One scored pair: the generated file, the real target file and the target's image name."""

    generated: Path
    real: Path
    target_name: str
    source_name: str | None = None


def _stem(name: str) -> str:
    """``name`` without an image extension (other suffixes, e.g. ``.jpg_vis``, are kept)."""
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_EXTENSIONS else name


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; MatchingError if none or not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MatchingError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise MatchingError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


class _Index:
    """Files of a folder by exact name and by stem."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.files = list_images(folder)
        self.by_name = {p.name: p for p in self.files}
        self.by_stem: dict[str, list[Path]] = {}
        for p in self.files:
            self.by_stem.setdefault(p.stem, []).append(p)

    def stem_match(self, stem: str) -> Path | None:
        found = self.by_stem.get(stem, [])
        if len(found) > 1:
            raise MatchingError(f"several files in {self.folder} share the stem {stem!r}: "
                                + ", ".join(p.name for p in found))
        return found[0] if found else None

    def find(self, name: str) -> Path | None:
        """The file named ``name``, else the only one with ``name``'s stem."""
        return self.by_name.get(name) or self.stem_match(_stem(name))


def split_pair_name(stem: str) -> tuple[str, str] | None:
    """``(source, target)`` of a pair-named file stem (``_vis`` dropped), or None if it is not one."""
    if stem.endswith("_vis"):
        stem = stem[: -len("_vis")]
    for separator in PAIR_SEPARATORS[:2]:
        if separator in stem:
            source, target = stem.rsplit(separator, 1)
            if source and target:
                return source, target
    return None


def match_by_name(generated_dir: str | Path, real_dir: str | Path) -> list[MatchedPair]:
    """Pair every generated image with the real image of the same name, stem, or pair-name target."""
    generated, real = _Index(generated_dir), _Index(real_dir)
    pairs, unmatched = [], []
    for path in generated.files:
        target = real.find(path.name)
        source = None
        if target is None and (split := split_pair_name(path.stem)) is not None:
            source, target_name = split
            target = real.find(target_name)
        if target is None:
            unmatched.append(path.name)
            continue
        pairs.append(MatchedPair(generated=path, real=target, target_name=target.name, source_name=source))
    if unmatched:
        raise MatchingError(f"{len(unmatched)} generated file(s) in {generated.folder} have no real image in "
                            f"{real.folder} (by name, stem or pair name): {', '.join(unmatched[:5])}"
                            " - pass --pairs for pair-named outputs")
    return pairs


def pair_candidates(source_name: str, target_name: str) -> tuple[str, ...]:
    """Generated-file stems (no image extension) a pair may be written under, most specific first."""
    sources = dict.fromkeys((source_name, _stem(source_name)))
    targets = dict.fromkeys((target_name, _stem(target_name)))
    return tuple(dict.fromkeys(f"{a}{sep}{b}{suffix}" for sep in PAIR_SEPARATORS for suffix in PAIR_SUFFIXES
                               for a in sources for b in targets))


def match_pairs(generated_dir: str | Path, real_dir: str | Path,
                pairs: Sequence[tuple[str, str]]) -> list[MatchedPair]:
    """Find the generated file of every ``(source_name, target_name)`` pair and the target's real image."""
    generated, real = _Index(generated_dir), _Index(real_dir)
    out, missing = [], []
    used: dict[Path, tuple[str, str]] = {}
    for source_name, target_name in pairs:
        found = [p for stem in pair_candidates(source_name, target_name)
                 for p in generated.by_stem.get(stem, [])]
        if len(found) > 1:
            raise MatchingError(f"pair ({source_name}, {target_name}) matches several files in "
                                f"{generated.folder}: {', '.join(p.name for p in found)}")
        if not found:
            missing.append(f"{source_name}->{target_name}")
            continue
        if found[0] in used and used[found[0]] != (source_name, target_name):
            raise MatchingError(f"{found[0]} matches two pairs: {used[found[0]]} and ({source_name}, {target_name})")
        used[found[0]] = (source_name, target_name)
        target = real.find(target_name)
        if target is None:
            raise MatchingError(f"target image {target_name!r} of pair ({source_name}, {target_name}) "
                                f"not found in {real.folder}")
        out.append(MatchedPair(generated=found[0], real=target, target_name=target_name, source_name=source_name))
    if missing:
        raise MatchingError(f"{len(missing)} pair(s) have no generated file in {generated.folder}: "
                            f"{', '.join(missing[:5])} (tried e.g. {pair_candidates(*pairs[0])[0]}.png)")
    return out


def last_panel(image: np.ndarray, panel_aspect: float, path: Path) -> np.ndarray:
    """The right-most panel of a side-by-side strip ``(H, n * w, 3)``, ``w = round(H * panel_aspect)``."""
    height, width = image.shape[:2]
    panel = int(round(height * panel_aspect))
    if panel < 1 or width % panel != 0:
        raise FormatError(path, f"width {width} is not a whole number of {panel}-px panels "
                                f"(height {height}, real aspect {panel_aspect:.4f}); --crop-last-panel "
                                "expects a strip of equal panels")
    return image[:, width - panel:]


def read_generated(path: Path, size: tuple[int, int], crop_last_panel: bool = False) -> np.ndarray:
    """A generated image as ``(H, W, 3)`` uint8 of the real image's ``size``.

    Optionally takes the last panel of a strip first; then resizes bilinearly (PIL) if needed.
    """
    image = read_image(path)
    height, width = size
    if crop_last_panel:
        image = last_panel(image, width / height, path)
    if image.shape[:2] != (height, width):
        image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    return image
