"""Part label sets (LIP-20, Market-7, the 8-class ADGAN/PISE merge), left/right swaps, merges and the
body-skeleton part adjacency E used by LGR.

A *layout* is either an ``(H, W)`` integer label map or an ``(N, H, W)`` one-hot tensor over a label set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LIP20_NAMES: tuple[str, ...] = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks",
    "pants", "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg",
    "left_shoe", "right_shoe",
)

#: Skeleton connectivity between LIP-20 parts (undirected): which parts touch on a human body.
LIP20_EDGES: tuple[tuple[str, str], ...] = (
    ("hat", "hair"), ("hat", "face"), ("hair", "face"), ("sunglasses", "face"), ("sunglasses", "hair"),
    ("face", "upper_clothes"), ("face", "dress"), ("face", "coat"), ("face", "jumpsuits"), ("face", "scarf"),
    ("hair", "upper_clothes"), ("hair", "coat"), ("hair", "dress"),
    ("scarf", "upper_clothes"), ("scarf", "coat"), ("scarf", "dress"),
    ("upper_clothes", "coat"), ("upper_clothes", "pants"), ("upper_clothes", "skirt"),
    ("coat", "pants"), ("coat", "skirt"), ("coat", "dress"),
    ("upper_clothes", "left_arm"), ("upper_clothes", "right_arm"),
    ("coat", "left_arm"), ("coat", "right_arm"), ("dress", "left_arm"), ("dress", "right_arm"),
    ("jumpsuits", "left_arm"), ("jumpsuits", "right_arm"),
    ("left_arm", "glove"), ("right_arm", "glove"),
    ("pants", "left_leg"), ("pants", "right_leg"), ("skirt", "left_leg"), ("skirt", "right_leg"),
    ("dress", "left_leg"), ("dress", "right_leg"), ("jumpsuits", "left_leg"), ("jumpsuits", "right_leg"),
    ("pants", "socks"), ("pants", "left_shoe"), ("pants", "right_shoe"), ("jumpsuits", "socks"),
    ("left_leg", "socks"), ("right_leg", "socks"), ("socks", "left_shoe"), ("socks", "right_shoe"),
    ("left_leg", "left_shoe"), ("right_leg", "right_shoe"),
)

MARKET7_NAMES: tuple[str, ...] = ("background", "head", "upper_clothes", "lower_clothes", "arms", "legs", "shoes")
MARKET7_EDGES: tuple[tuple[str, str], ...] = (
    ("head", "upper_clothes"), ("upper_clothes", "arms"), ("upper_clothes", "lower_clothes"),
    ("lower_clothes", "legs"), ("legs", "shoes"), ("lower_clothes", "shoes"),
)
#: The documented Market-7 merge: each LIP-20 part -> Market-7 part.
LIP20_TO_MARKET7: dict[str, str] = {
    "background": "background",
    "hat": "head", "hair": "head", "sunglasses": "head", "face": "head",
    "upper_clothes": "upper_clothes", "dress": "upper_clothes", "coat": "upper_clothes",
    "jumpsuits": "upper_clothes", "scarf": "upper_clothes",
    "pants": "lower_clothes", "skirt": "lower_clothes",
    "glove": "arms", "left_arm": "arms", "right_arm": "arms",
    "socks": "legs", "left_leg": "legs", "right_leg": "legs",
    "left_shoe": "shoes", "right_shoe": "shoes",
}

ADGAN8_NAMES: tuple[str, ...] = ("background", "hair", "face", "upper_clothes", "lower_clothes", "arms", "legs", "shoes")
ADGAN8_EDGES: tuple[tuple[str, str], ...] = (
    ("hair", "face"), ("hair", "upper_clothes"), ("face", "upper_clothes"), ("upper_clothes", "arms"),
    ("upper_clothes", "lower_clothes"), ("lower_clothes", "legs"), ("legs", "shoes"), ("lower_clothes", "shoes"),
)
#: The 8-class merge used by ADGAN/PISE-style pipelines (for interoperability).
LIP20_TO_ADGAN8: dict[str, str] = {
    "background": "background",
    "hat": "hair", "hair": "hair", "sunglasses": "face", "face": "face",
    "upper_clothes": "upper_clothes", "dress": "upper_clothes", "coat": "upper_clothes",
    "jumpsuits": "upper_clothes", "scarf": "upper_clothes",
    "pants": "lower_clothes", "skirt": "lower_clothes",
    "glove": "arms", "left_arm": "arms", "right_arm": "arms",
    "socks": "legs", "left_leg": "legs", "right_leg": "legs",
    "left_shoe": "shoes", "right_shoe": "shoes",
}


def _flip_permutation(names: tuple[str, ...]) -> tuple[int, ...]:
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for name in names:
        if name.startswith("left_"):
            perm.append(index["right_" + name[5:]])
        elif name.startswith("right_"):
            perm.append(index["left_" + name[6:]])
        else:
            perm.append(index[name])
    return tuple(perm)


def _palette(count: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL/LIP colour map (bit-interleaved), the convention of LIP palette PNGs."""
    colours = []
    for label in range(count):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


@dataclass(frozen=True)
class LabelSet:
    """A set of part labels with its left/right swap and skeleton adjacency."""

    name: str
    names: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    flip_permutation: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flip_permutation", _flip_permutation(self.names))
        unknown = {n for e in self.edges for n in e} - set(self.names)
        if unknown:
            raise ValueError(f"label set {self.name}: edges name unknown parts {sorted(unknown)}")

    @property
    def num_parts(self) -> int:
        return len(self.names)

    def index(self, part: str) -> int:
        """Label of ``part``; ValueError listing the valid names otherwise."""
        try:
            return self.names.index(part)
        except ValueError:
            raise ValueError(f"unknown part {part!r} for label set {self.name}; valid: {', '.join(self.names)}") from None

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        return _palette(self.num_parts)

    def adjacency(self) -> torch.Tensor:
        """Binary symmetric ``(N, N)`` adjacency E without self loops."""
        import torch

        n = self.num_parts
        adj = torch.zeros(n, n)
        for a, b in self.edges:
            i, j = self.index(a), self.index(b)
            adj[i, j] = adj[j, i] = 1.0
        return adj

    def normalized_adjacency(self) -> torch.Tensor:
        """``D^-1/2 (E + I) D^-1/2`` (symmetric, rows of isolated nodes keep their self loop)."""
        import torch

        adj = self.adjacency() + torch.eye(self.num_parts)
        inv_sqrt = adj.sum(dim=1).rsqrt()
        return inv_sqrt[:, None] * adj * inv_sqrt[None, :]

    def flip_labels(self, labels: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Swap left/right part labels of an integer label map (no spatial mirror)."""
        if not isinstance(labels, np.ndarray) and type(labels).__module__.startswith("torch"):
            import torch

            lut = torch.tensor(self.flip_permutation, dtype=labels.dtype, device=labels.device)
            return lut[labels.long()]
        lut = np.asarray(self.flip_permutation, dtype=np.asarray(labels).dtype)
        return lut[labels]

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """``(..., H, W)`` int labels -> ``(..., N, H, W)`` float one-hot."""
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_parts):
            raise ValueError(f"labels outside [0, {self.num_parts}) for label set {self.name}")
        import torch

        hot = torch.nn.functional.one_hot(labels.long(), self.num_parts)
        return hot.movedim(-1, -3).float()

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """``(H, W)`` int labels -> ``(H, W, 3)`` uint8 RGB with the label set's palette."""
        return np.asarray(self.palette, dtype=np.uint8)[np.asarray(labels)]


LIP20 = LabelSet("lip20", LIP20_NAMES, LIP20_EDGES)
MARKET7 = LabelSet("market7", MARKET7_NAMES, MARKET7_EDGES)
ADGAN8 = LabelSet("adgan8", ADGAN8_NAMES, ADGAN8_EDGES)
LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (LIP20, MARKET7, ADGAN8)}
_MERGES: dict[str, dict[str, str]] = {"market7": LIP20_TO_MARKET7, "adgan8": LIP20_TO_ADGAN8, "lip20": {n: n for n in LIP20_NAMES}}


def get_label_set(name: str) -> LabelSet:
    """Look up a label set by name (``lip20``, ``market7``, ``adgan8``)."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; valid: {', '.join(LABEL_SETS)}") from None


def merge_table(target: str) -> np.ndarray:
    """``(20,)`` lookup table mapping LIP-20 labels to labels of ``target``."""
    dest = get_label_set(target)
    mapping = _MERGES[dest.name]
    return np.array([dest.index(mapping[name]) for name in LIP20_NAMES], dtype=np.uint8)


def merge_lip20(labels: np.ndarray, target: str) -> np.ndarray:
    """Map an ``(H, W)`` LIP-20 label map to the ``target`` label set."""
    labels = np.asarray(labels)
    if labels.size and labels.max() >= len(LIP20_NAMES):
        raise ValueError(f"LIP-20 labels must be < 20, found {int(labels.max())}")
    return merge_table(target)[labels]
