"""Pseudo-labels of the image-level-only CCP photos (training/parser_pseudo.py): the tag correction, the family
confidence, the labelled cache's mirrored rows, and the split (never a held-out photo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import LIP20
from recapture.data.ccp import HELD_OUT_IDS, IGNORE, LABELLED_IDS, UNLABELLED_IDS, CcpDataset, CcpError, image_tags
from recapture.models.parser import STAGES, ParserHead, ParserHeadConfig
from recapture.training.parser_data import FeatureCache, _flip_lut
from recapture.training.parser_pseudo import family_confidence, label_cache, tag_corrected, tagged_parts

CCP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
needs_ccp = pytest.mark.skipif(not CCP.is_dir(), reason="CCP data not present (../shared/data/ccp)")
DRESS, SKIRT, COAT, UPPER, HAIR = (LIP20.index(n) for n in ("dress", "skirt", "coat", "upper_clothes", "hair"))


def _outfit() -> tuple[np.ndarray, np.ndarray]:
    """A 40x20 layout: hair, a dress from row 10 to 30 (hips at row 20), a coat strip, and its keypoints."""
    labels = np.zeros((40, 20), np.uint8)
    labels[:5, 5:15] = HAIR
    labels[10:30, 5:15] = DRESS
    labels[10:20, 15:18] = COAT
    keypoints = np.full((18, 2), -1.0)
    keypoints[KEYPOINT_INDEX["right_hip"]] = (20, 7)
    keypoints[KEYPOINT_INDEX["left_hip"]] = (20, 13)
    return labels, keypoints


def test_tags_turn_a_wrong_garment_into_the_named_one_or_ignore() -> None:
    labels, keypoints = _outfit()
    skirt_outfit = tag_corrected(labels, frozenset({"skirt", "top", "hair", "skin"}), keypoints)
    assert (skirt_outfit[20:30, 5:15] == SKIRT).all()  # below the hips: the skirt the tags name
    assert (skirt_outfit[10:20, 5:15] == IGNORE).all()  # above: the top of an outfit taken for a dress
    assert (skirt_outfit[10:20, 15:18] == IGNORE).all()  # no coat among the tags
    assert (skirt_outfit[:5, 5:15] == HAIR).all() and (skirt_outfit[35:] == 0).all()  # not garments: kept
    both = tag_corrected(labels, frozenset({"dress", "skirt", "coat"}), keypoints)
    np.testing.assert_array_equal(both, labels)  # every garment predicted is named: nothing changes
    assert (tag_corrected(labels, frozenset({"jeans"}), keypoints)[10:30, 5:15] == IGNORE).all()
    skirted = np.where(labels == DRESS, SKIRT, labels).astype(np.uint8)
    as_dress = tag_corrected(skirted, frozenset({"dress", "blazer"}), keypoints)
    assert (as_dress[10:30, 5:15] == DRESS).all() and (as_dress[10:20, 15:18] == COAT).all()
    assert tagged_parts(frozenset({"romper", "jacket", "skin", "bag"})) == {"jumpsuits", "coat"}


def test_family_confidence_sums_the_garments_the_tags_tell_apart() -> None:
    probabilities = np.zeros((20, 1, 2), np.float32)
    probabilities[DRESS, 0, 0], probabilities[SKIRT, 0, 0], probabilities[HAIR, 0, 0] = 0.4, 0.35, 0.25
    probabilities[HAIR, 0, 1], probabilities[UPPER, 0, 1] = 0.45, 0.55
    labels = probabilities.argmax(axis=0).astype(np.uint8)
    np.testing.assert_allclose(family_confidence(probabilities, labels), [[0.75, 0.55]], atol=1e-6)


def test_unlabelled_ids_are_apart_from_the_labelled_and_held_out_ones(tmp_path: Path) -> None:
    assert not set(UNLABELLED_IDS) & (set(LABELLED_IDS) | set(HELD_OUT_IDS)) and len(UNLABELLED_IDS) == 1094
    if CCP.is_dir():
        with pytest.raises(CcpError, match="not image-level-only"):
            CcpDataset(CCP, (905,), pixel_labels=False)
        with pytest.raises(CcpError, match="no pixel-level labels"):
            CcpDataset(CCP, (1005,))


@needs_ccp
def test_label_cache_writes_tag_corrected_labels_and_their_mirrors(tmp_path: Path) -> None:
    """Two real image-level-only photos in a tiny cache (random stages, random head): each plain row gets labels
    consistent with its tags, each mirror row the mirror of them; with a threshold above 1 every pixel is ignored."""
    ids = (1005, 1006)
    dataset = CcpDataset(CCP, ids, pixel_labels=False)
    assert image_tags(CCP, 1005) == dataset.tags(1005) and "skin" in dataset.tags(1005)
    cache = FeatureCache(tmp_path / "pseudo", 2 * len(ids))
    generator = np.random.default_rng(0)
    for name in STAGES:
        cache.arrays[name][:] = generator.normal(size=cache.arrays[name].shape).astype(np.float16)
    cache.arrays["masks"][:] = 255
    cache.arrays["photo_ids"][:] = ids * 2
    torch.manual_seed(0)
    head = ParserHead(ParserHeadConfig(deep=8, middle=8, shallow=8, fine=8))
    assert label_cache(cache, head, dataset, threshold=1.01)["kept"] == 0.0  # no pixel that sure: all ignored
    assert (np.asarray(cache.arrays["labels"]) == IGNORE).all()
    shares = label_cache(cache, head, dataset, threshold=0.0)
    labels = np.asarray(cache.arrays["labels"])
    flip = _flip_lut()
    for row, photo_id in enumerate(ids):
        np.testing.assert_array_equal(labels[row + len(ids)], flip[labels[row][:, ::-1]])
        named = {LIP20.index(part) for part in tagged_parts(dataset.tags(photo_id))}
        garments = {LIP20.index(part) for part in
                    ("hat", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks", "pants", "jumpsuits",
                     "scarf", "skirt")}
        assert not (set(np.unique(labels[row]).tolist()) & garments) - named
    assert 0.0 < shares["kept"] <= 1.0 and shares["relabelled"] <= shares["kept"]
