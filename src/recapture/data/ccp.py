"""Clothing Co-Parsing (CCP): real street-fashion photos with 59-class pixel labels, read as LIP-20.

Folder layout (``../shared/data/ccp``): ``photos/NNNN.jpg`` (2,098), ``annotations/pixel-level/NNNN.mat``
(photos 0001-1004, variable ``groundtruth``, uint8 ``(H, W)`` indices into ``label_list.mat``);
``annotations/image-level/NNNN.mat`` (photos 1005-2098, variable ``tags``: the label indices present, no pixels),
read by :func:`image_tags`.

The split is fixed: photos 0905-1004 are the held-out set (never trained on, selected on or early-stopped
on); 0001-0904 are split by :func:`split_ids` into training and validation. :data:`CCP_TO_LIP20` is the one
59 -> LIP-20 mapping table (docs/parser.md shows it); ``skin`` and the shoe, stocking and tights classes
are split into left/right/face parts with the keypoints by :func:`ccp_to_lip20`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.parts import LIP20
from recapture.data.errors import FormatError
from recapture.data.formats import read_image

#: Label of pixels the loss and the scores ignore (a CCP class with no LIP-20 part).
IGNORE = 255
LABELLED_IDS = range(1, 1005)
#: Photos with image-level tags only (which labels are present), no pixel labels.
UNLABELLED_IDS = range(1005, 2099)
HELD_OUT_IDS = range(905, 1005)
NUM_CCP_LABELS = 59

#: CCP label name -> LIP-20 part, ``"ignore"``, or a keypoint split: ``"skin"`` (face / arms / legs),
#: ``"legwear"`` (left / right leg: stockings, tights) and ``"shoe"`` (left / right shoe).
CCP_TO_LIP20: dict[str, str] = {
    "null": "background",
    "accessories": "ignore", "bag": "ignore", "belt": "ignore", "bracelet": "ignore", "earrings": "ignore",
    "necklace": "ignore", "purse": "ignore", "ring": "ignore", "tie": "ignore", "wallet": "ignore",
    "watch": "ignore", "intimate": "ignore", "panties": "ignore", "swimwear": "ignore",
    "blazer": "coat", "cape": "coat", "cardigan": "coat", "coat": "coat", "jacket": "coat", "suit": "coat",
    "blouse": "upper_clothes", "bra": "upper_clothes", "hoodie": "upper_clothes", "jumper": "upper_clothes",
    "shirt": "upper_clothes", "sweater": "upper_clothes", "sweatshirt": "upper_clothes",
    "t-shirt": "upper_clothes", "top": "upper_clothes", "vest": "upper_clothes",
    "dress": "dress", "bodysuit": "jumpsuits", "romper": "jumpsuits",
    "jeans": "pants", "leggings": "pants", "pants": "pants", "shorts": "pants",
    "skirt": "skirt",
    "boots": "shoe", "clogs": "shoe", "flats": "shoe", "heels": "shoe", "loafers": "shoe", "pumps": "shoe",
    "sandals": "shoe", "shoes": "shoe", "sneakers": "shoe", "wedges": "shoe",
    "socks": "socks", "stockings": "legwear", "tights": "legwear",
    "glasses": "sunglasses", "sunglasses": "sunglasses", "gloves": "glove", "hair": "hair", "hat": "hat",
    "scarf": "scarf", "skin": "skin",
}
_SPLITS = ("ignore", "skin", "legwear", "shoe")


class CcpError(ValueError):
    """A CCP folder or file is missing or malformed; the message names the path."""


def read_label_names(path: str | Path) -> tuple[str, ...]:
    """The 59 label names of ``label_list.mat`` (index 0 is ``null``)."""
    try:
        raw = scipy.io.loadmat(str(path))["label_list"]
    except (OSError, KeyError, ValueError) as err:
        raise CcpError(f"{path}: not a CCP label_list.mat ({err})") from None
    names = tuple(str(item[0]) if len(item) else "" for item in raw.ravel())
    unknown = [n for n in names if n not in CCP_TO_LIP20]
    if len(names) != NUM_CCP_LABELS or unknown:
        raise CcpError(f"{path}: expected the 59 CCP labels, got {len(names)} (unknown: {unknown})")
    return names


def split_ids(validation: int = 100, seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(training ids, validation ids)``: a seeded draw of ``validation`` ids from 0001-0904."""
    candidates = np.array([i for i in LABELLED_IDS if i not in HELD_OUT_IDS])
    chosen = np.random.default_rng(seed).choice(candidates, size=validation, replace=False)
    held = set(chosen.tolist())
    return tuple(int(i) for i in candidates if i not in held), tuple(sorted(int(i) for i in chosen))


@dataclass(frozen=True)
class CcpDataset:
    """The labelled CCP photos under ``root`` restricted to ``ids`` (default: all 1,004); with ``pixel_labels``
    False, photos of :data:`UNLABELLED_IDS` (their photos and :meth:`tags` only)."""

    root: Path
    ids: tuple[int, ...] = tuple(LABELLED_IDS)
    pixel_labels: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if not (self.root / "photos").is_dir() or not (self.root / "label_list.mat").is_file():
            raise CcpError(f"{self.root}: not a CCP folder (needs photos/ and label_list.mat)")
        allowed, what = ((LABELLED_IDS, "have no pixel-level labels (labelled: 1-1004)") if self.pixel_labels
                         else (UNLABELLED_IDS, "are not image-level-only photos (1005-2098)"))
        bad = [i for i in self.ids if i not in allowed]
        if bad:
            raise CcpError(f"{self.root}: ids {bad[:5]} {what}")

    @staticmethod
    def photo_name(photo_id: int) -> str:
        return f"{photo_id:04d}.jpg"

    def photo_path(self, photo_id: int) -> Path:
        return self.root / "photos" / self.photo_name(photo_id)

    @property
    def files(self) -> tuple[Path, ...]:
        """The photo files this dataset reads (what a leak test inspects)."""
        return tuple(self.photo_path(i) for i in self.ids)

    def photo(self, photo_id: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        return read_image(self.photo_path(photo_id))

    def ccp_labels(self, photo_id: int) -> np.ndarray:
        """``(H, W)`` uint8 CCP labels (0-58) of a photo."""
        path = self.root / "annotations" / "pixel-level" / f"{photo_id:04d}.mat"
        try:
            labels = np.asarray(scipy.io.loadmat(str(path))["groundtruth"], dtype=np.uint8)
        except (OSError, KeyError, ValueError) as err:
            raise FormatError(path, f"cannot read the CCP groundtruth ({err})") from None
        if labels.ndim != 2 or (labels.size and int(labels.max()) >= NUM_CCP_LABELS):
            raise FormatError(path, f"groundtruth must be (H, W) labels < {NUM_CCP_LABELS}")
        return labels

    def lip20_labels(self, photo_id: int, keypoints: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8 LIP-20 labels (:data:`IGNORE` where CCP's class has none) of a photo."""
        return ccp_to_lip20(self.ccp_labels(photo_id), keypoints, read_label_names(self.root / "label_list.mat"))

    def tags(self, photo_id: int) -> frozenset[str]:
        """The CCP label names an image-level-only photo is tagged with (:func:`image_tags`)."""
        return image_tags(self.root, photo_id)


def image_tags(root: str | Path, photo_id: int) -> frozenset[str]:
    """The CCP label names present in photo ``photo_id`` of :data:`UNLABELLED_IDS` (``annotations/image-level``)."""
    path = Path(root) / "annotations" / "image-level" / f"{photo_id:04d}.mat"
    names = read_label_names(Path(root) / "label_list.mat")
    try:
        tags = np.asarray(scipy.io.loadmat(str(path))["tags"]).ravel().astype(np.int64)
    except (OSError, KeyError, ValueError) as err:
        raise FormatError(path, f"cannot read the CCP image-level tags ({err})") from None
    if tags.size and (tags.min() < 0 or tags.max() >= NUM_CCP_LABELS):
        raise FormatError(path, f"tags must be label indices < {NUM_CCP_LABELS}")
    return frozenset(names[int(t)] for t in tags)


def _segments(keypoints: np.ndarray, chain: tuple[str, str, str], extend: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(start, end)`` y/x bone segments along ``chain`` (e.g. shoulder-elbow-wrist), skipping missing
    joints, plus the last bone extended by ``extend`` of its length past the end (hand, foot)."""
    points = [keypoints[KEYPOINT_INDEX[name]].astype(np.float64) for name in chain]
    present = [p for p in points if (p != -1).all()]
    if len(present) == 1:
        return [(present[0], present[0])]
    bones = list(zip(present[:-1], present[1:]))
    if bones and extend > 0:
        start, end = bones[-1]
        bones.append((end, end + extend * (end - start)))
    return bones


def _distance(pixels: np.ndarray, bones: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``(P,)`` distance from ``(P, 2)`` y/x pixels to the nearest of ``bones`` (inf when there are none)."""
    best = np.full(len(pixels), np.inf)
    for start, end in bones:
        direction = end - start
        length2 = max(float(direction @ direction), 1e-9)
        t = np.clip(((pixels - start) @ direction) / length2, 0.0, 1.0)
        nearest = start + t[:, None] * direction
        best = np.minimum(best, np.linalg.norm(pixels - nearest, axis=1))
    return best


def _shoulder_line(keypoints: np.ndarray, xs: np.ndarray) -> np.ndarray | None:
    """``y`` of the line through the shoulders at each ``x`` (one shoulder or the neck: horizontal)."""
    shoulders = [keypoints[KEYPOINT_INDEX[n]] for n in ("right_shoulder", "left_shoulder")]
    present = [p.astype(np.float64) for p in shoulders if (p != -1).all()]
    if len(present) == 2 and abs(present[1][1] - present[0][1]) > 1:
        slope = (present[1][0] - present[0][0]) / (present[1][1] - present[0][1])
        return present[0][0] + slope * (xs - present[0][1])
    if present:
        return np.full(len(xs), np.mean([p[0] for p in present]))
    neck = keypoints[KEYPOINT_INDEX["neck"]]
    return None if (neck == -1).any() else np.full(len(xs), float(neck[0]))


def _split_by_bones(pixels: np.ndarray, candidates: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """LIP-20 label of the nearest candidate part for each pixel; :data:`IGNORE` when no part has bones."""
    names = [n for n, bones in candidates.items() if bones]
    if not names:
        return np.full(len(pixels), IGNORE, dtype=np.uint8)
    distances = np.stack([_distance(pixels, candidates[n]) for n in names])
    return np.array([LIP20.index(n) for n in names], dtype=np.uint8)[distances.argmin(axis=0)]


def ccp_to_lip20(labels: np.ndarray, keypoints: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Map ``(H, W)`` CCP labels to LIP-20 with :data:`CCP_TO_LIP20` and the ``(18, 2)`` y/x keypoints.

    * ``skin``: Face above the shoulder line; below it, the nearest arm or leg bone (hand and foot
      included), legs only below the hips' line - so neck and torso skin go to Face above the shoulders
      and to the nearest arm otherwise. No shoulders or neck: nearest of face joints, arms, legs.
    * ``stockings``/``tights``: nearest leg; shoes: the shoe of the nearest lower leg.
    * A split with no usable joint gives :data:`IGNORE`, as do classes with no LIP-20 part.
    """
    labels = np.asarray(labels)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    table = np.full(256, IGNORE, dtype=np.uint8)
    for index, name in enumerate(names):
        target = CCP_TO_LIP20[name]
        if target not in _SPLITS:
            table[index] = LIP20.index(target)
    out = table[labels]
    sides = ("left", "right")
    arms = {f"{s}_arm": _segments(keypoints, (f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist"), 0.35) for s in sides}
    legs = {f"{s}_leg": _segments(keypoints, (f"{s}_hip", f"{s}_knee", f"{s}_ankle"), 0.25) for s in sides}
    lower = {f"{s}_shoe": _segments(keypoints, (f"{s}_knee", f"{s}_ankle"), 0.3) for s in sides}
    for split in ("skin", "legwear", "shoe"):
        chosen = np.isin(labels, [i for i, n in enumerate(names) if CCP_TO_LIP20[n] == split])
        if not chosen.any():
            continue
        pixels = np.argwhere(chosen).astype(np.float64)
        if split == "shoe":
            out[chosen] = _split_by_bones(pixels, lower)
        elif split == "legwear":
            out[chosen] = _split_by_bones(pixels, legs)
        else:
            out[chosen] = _split_skin(pixels, keypoints, arms, legs)
    return out


def _split_skin(pixels: np.ndarray, keypoints: np.ndarray, arms: dict, legs: dict) -> np.ndarray:
    """Face / arm / leg labels of ``(P, 2)`` y/x skin pixels (see :func:`ccp_to_lip20`)."""
    line = _shoulder_line(keypoints, pixels[:, 1])
    if line is None:
        face_points = [keypoints[KEYPOINT_INDEX[n]] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
        face = [(p, p) for p in face_points if (p != -1).all()]
        return _split_by_bones(pixels, {"face": face, **arms, **legs})
    out = np.full(len(pixels), LIP20.index("face"), dtype=np.uint8)
    below = pixels[:, 0] > line
    hips = keypoints[[KEYPOINT_INDEX["right_hip"], KEYPOINT_INDEX["left_hip"]]]
    hips = hips[~missing_mask(hips)]
    hip_y = float(hips[:, 0].mean()) if len(hips) else np.inf
    torso = below & (pixels[:, 0] <= hip_y)
    lower_body = below & ~torso
    if torso.any():
        out[torso] = _split_by_bones(pixels[torso], arms)
    if lower_body.any():
        out[lower_body] = _split_by_bones(pixels[lower_body], {**arms, **legs})
    return out


#: The 7 coarse groups of the parsing scores and the LIP-20 parts in each; other parts have no group.
COARSE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("background", ("background",)), ("hair", ("hair",)),
    ("skin", ("face", "left_arm", "right_arm", "left_leg", "right_leg")),
    ("upper garment", ("upper_clothes", "coat")), ("dress/jumpsuit", ("dress", "jumpsuits")),
    ("lower garment", ("pants", "skirt")), ("shoes", ("left_shoe", "right_shoe")),
)


def coarse_table() -> np.ndarray:
    """``(256,)`` LIP-20 label -> coarse group index, ``len(COARSE_GROUPS)`` for parts with no group
    (and for :data:`IGNORE`)."""
    table = np.full(256, len(COARSE_GROUPS), dtype=np.int64)
    for group, (_, parts) in enumerate(COARSE_GROUPS):
        table[[LIP20.index(p) for p in parts]] = group
    return table


def confusion(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``(classes, classes + 1)`` counts ``[true, predicted]``; true labels ``>= classes`` are skipped and
    predictions ``>= classes`` land in the last column (always wrong)."""
    true = np.asarray(true, dtype=np.int64).ravel()
    predicted = np.minimum(np.asarray(predicted, dtype=np.int64).ravel(), classes)
    keep = true < classes
    return np.bincount(true[keep] * (classes + 1) + predicted[keep],
                       minlength=classes * (classes + 1)).reshape(classes, classes + 1)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """``(classes,)`` IoU from a :func:`confusion` matrix; NaN for classes absent from truth and prediction."""
    classes = matrix.shape[0]
    hits = np.diag(matrix[:, :classes]).astype(np.float64)
    union = matrix.sum(axis=1) + matrix[:, :classes].sum(axis=0) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)
