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
matches no file is counted as missing, a generated file that no pair names as unmatched
(:class:`~recapture.evaluation.report.MatchCounts`; ``--strict`` turns either into an error). A pair
that matches several files (``a.png`` and ``a.jpg``) is always an error naming them: scoring one of
them would be a guess, scoring both would count the pair twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from recapture.evaluation.report import MatchCounts

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


@dataclass(frozen=True)
class Matching:
    """The matched pairs and the counts of what did not match."""

    pairs: tuple[MatchedPair, ...]
    counts: MatchCounts

    def check_strict(self) -> None:
        """MatchingError if any pair is missing or any generated file unmatched (``--strict``)."""
        missing, unmatched = self.counts.missing, self.counts.unmatched
        if missing or unmatched:
            raise MatchingError(f"--strict: {self.counts.summary()}"
                                + (f"; missing e.g. {', '.join(missing[:5])}" if missing else "")
                                + (f"; unmatched e.g. {', '.join(unmatched[:5])}" if unmatched else ""))


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


class ImageIndex:
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


def _refuse_duplicates(found: dict[tuple[str | None, Path], list[Path]], folder: Path) -> None:
    for (source, target), files in found.items():
        if len(files) > 1:
            what = f"pair ({source}, {target.name})" if source is not None else f"real image {target.name}"
            raise MatchingError(f"{what} matches several files in {folder}: {', '.join(p.name for p in files)}; "
                                "keep one")


def match_by_name(generated_dir: str | Path, real_dir: str | Path) -> Matching:
    """Pair every generated image with the real image of the same name, stem, or pair-name target.

    Generated files that match nothing are counted as unmatched; two files for one pair (``a.png``,
    ``a.jpg``) raise MatchingError naming both.
    """
    generated, real = ImageIndex(generated_dir), ImageIndex(real_dir)
    found: dict[tuple[str | None, Path], list[Path]] = {}
    unmatched = []
    for path in generated.files:
        target = real.find(path.name)
        source = None
        if target is None and (split := split_pair_name(path.stem)) is not None:
            source, target_name = split
            target = real.find(target_name)
        if target is None:
            unmatched.append(path.name)
            continue
        found.setdefault((source, target), []).append(path)
    _refuse_duplicates(found, generated.folder)
    pairs = tuple(MatchedPair(generated=files[0], real=target, target_name=target.name, source_name=source)
                  for (source, target), files in found.items())
    return Matching(pairs, MatchCounts(listed=None, scored=len(pairs), unmatched=tuple(unmatched)))


def pair_candidates(source_name: str, target_name: str) -> tuple[str, ...]:
    """Generated-file stems (no image extension) a pair may be written under, most specific first."""
    sources = dict.fromkeys((source_name, _stem(source_name)))
    targets = dict.fromkeys((target_name, _stem(target_name)))
    return tuple(dict.fromkeys(f"{a}{sep}{b}{suffix}" for sep in PAIR_SEPARATORS for suffix in PAIR_SUFFIXES
                               for a in sources for b in targets))


def match_pairs(generated_dir: str | Path, real_dir: str | Path, pairs: Sequence[tuple[str, str]]) -> Matching:
    """Find the generated file of every ``(source_name, target_name)`` pair and the target's real image.

    Pairs without a file are counted as missing, files named by no pair as unmatched. Errors: a pair
    matching several files, a file matching two pairs, a target absent from ``real_dir``.
    """
    generated, real = ImageIndex(generated_dir), ImageIndex(real_dir)
    out, missing = [], []
    used: dict[Path, tuple[str, str]] = {}
    for source_name, target_name in pairs:
        found = [p for stem in pair_candidates(source_name, target_name)
                 for p in generated.by_stem.get(stem, [])]
        _refuse_duplicates({(source_name, Path(target_name)): found}, generated.folder)
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
    unmatched = tuple(p.name for p in generated.files if p not in used)
    return Matching(tuple(out), MatchCounts(listed=len(pairs), scored=len(out), missing=tuple(missing),
                                            unmatched=unmatched))

