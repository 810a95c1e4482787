"""Pseudo-labels for the CCP photos that have image-level tags only (1005-2098), to give the parser head more
skirts, dresses and jumpsuits to learn from than the 804 labelled training photos hold.

``python -m recapture.training.parser_pseudo --config configs/parser-ccp-pseudo.yaml``, after
``python -m recapture.training.parser_data --unlabelled ...`` (keypoints and person masks):

1. a view cache of each photo's plain crop and its mirror (:func:`recapture.training.parser_data.build_cache`,
   labels unknown at first);
2. a teacher head (a parser ``.safetensors``, by default the bundled one) labels each plain view as the shipped
   parser does: crop and mirror probabilities averaged, :func:`~recapture.models.parser_rules.vote_parts`;
3. :func:`tag_corrected`: the photo's tags name the garments it shows, so a garment part the tags do not name
   is wrong: a dress/skirt/jumpsuit pixel becomes the one such garment the tags name (a dress pixel becoming
   skirt only below the hips: above them it is the top of an outfit the teacher took for a dress), or ignore;
   any other garment part the tags do not name becomes ignore;
4. pixels whose family probability (:data:`FAMILIES`) is below ``threshold`` become ignore; the mirror view
   gets the mirrored labels.

Training (``pseudo_dir`` in :class:`recapture.training.parser.ParserTrainConfig`) mixes these views into every
batch. The held-out photos 0905-1004 are labelled ones, never among these ids.
"""

from __future__ import annotations

import numpy as np
import torch

from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import LIP20
from recapture.data.ccp import CCP_TO_LIP20, IGNORE, CcpDataset
from recapture.models.parser_rules import vote_parts
from recapture.training.parser_data import FeatureCache, ViewMaker, _flip_lut
from recapture.training.parser_eval import view_probabilities

#: LIP-20 garment parts a photo's tags can confirm or rule out.
GARMENTS: tuple[str, ...] = ("hat", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks", "pants",
                             "jumpsuits", "scarf", "skirt")
#: The one-piece/lower garments whose confusions the tags resolve.
ONE_PIECE: tuple[str, ...] = ("dress", "skirt", "jumpsuits")
#: Parts whose probabilities are summed for a pixel's confidence (the teacher hesitating between a dress and a
#: skirt is what the tags settle, so that doubt does not make the pixel ignored).
FAMILIES: tuple[tuple[str, ...], ...] = (("dress", "skirt", "jumpsuits", "pants"), ("left_arm", "right_arm"),
                                         ("left_leg", "right_leg"), ("left_shoe", "right_shoe"),
                                         ("upper_clothes", "coat"))


class PseudoViewMaker(ViewMaker):
    """Views of image-level-only photos: labels unknown (ignore) until :func:`label_cache` writes them."""

    def labels(self, photo_id: int, keypoints: np.ndarray) -> np.ndarray:
        height, width = self.mask(photo_id).shape
        return np.full((height, width), IGNORE, dtype=np.uint8)

    def person(self, photo_id: int) -> np.ndarray:
        return self.mask(photo_id) > 127


def tagged_parts(tags: frozenset[str]) -> frozenset[str]:
    """The LIP-20 garment parts (:data:`GARMENTS`) that CCP tags name."""
    return frozenset(CCP_TO_LIP20[tag] for tag in tags if CCP_TO_LIP20.get(tag) in GARMENTS)


def tag_corrected(labels: np.ndarray, tags: frozenset[str], keypoints: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 labels made consistent with the photo's tags (module doc, step 3); ``keypoints``
    ``(18, 2)`` y/x in the labels' frame (the hips' line, -1 missing)."""
    out = labels.copy()
    named = tagged_parts(tags)
    one_piece = [part for part in ONE_PIECE if part in named]
    hips = keypoints[[KEYPOINT_INDEX["right_hip"], KEYPOINT_INDEX["left_hip"]], 0]
    hips = hips[hips >= 0]
    rows = np.arange(labels.shape[0])[:, None]
    for part in GARMENTS:
        where = labels == LIP20.index(part)
        if part in named or not where.any():
            continue
        if part in ONE_PIECE and len(one_piece) == 1:
            target = one_piece[0]
            out[where] = LIP20.index(target)
            if part == "dress" and target == "skirt":
                above = where & (rows < hips.mean()) if hips.size else where
                out[above] = IGNORE
        else:
            out[where] = IGNORE
    return out


def family_confidence(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` the probability of each pixel's label's family (:data:`FAMILIES`; the part alone otherwise)."""
    summed = list(probabilities)
    for members in FAMILIES:
        indices = [LIP20.index(name) for name in members]
        total = probabilities[indices].sum(axis=0)
        for index in indices:
            summed[index] = total
    stacked = np.stack(summed)
    return np.take_along_axis(stacked, labels[None].astype(np.intp), axis=0)[0]


@torch.no_grad()
def label_cache(cache: FeatureCache, head: torch.nn.Module, dataset: CcpDataset, threshold: float,
                batch_size: int = 10) -> dict[str, float]:
    """Write the teacher's corrected labels into ``cache`` (rows ``i`` plain views, ``i + n`` their mirrors, as
    :func:`build_cache` orders them with no random views); returns the shares of pixels kept and changed."""
    count = len(cache) // 2
    ids = np.asarray(cache.arrays["photo_ids"][:count])
    flip = _flip_lut()
    head.eval()
    kept = changed = total = 0
    for start in range(0, count, batch_size):
        rows = np.arange(start, min(start + batch_size, count))
        probabilities = view_probabilities(head, cache, rows, cache, rows + count)[0].numpy()
        for row, photo_id, probs in zip(rows, ids[rows], probabilities):
            voted = vote_parts(probs, probs.argmax(axis=0).astype(np.uint8))
            labels = tag_corrected(voted, dataset.tags(int(photo_id)), np.asarray(cache.arrays["keypoints"][row]))
            labels[(family_confidence(probs, voted) < threshold) & (labels != IGNORE)] = IGNORE
            cache.arrays["labels"][row] = labels
            cache.arrays["labels"][row + count] = flip[labels[:, ::-1]]
            kept += int((labels != IGNORE).sum())
            changed += int(((labels != voted) & (labels != IGNORE)).sum())
            total += labels.size
    cache.flush()
    return {"kept": kept / max(total, 1), "relabelled": changed / max(total, 1)}
