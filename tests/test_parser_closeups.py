"""Close-up training views of the CCP parser: the photo cut between the waist and the ankles before the crop, as a
half-body photo reaches the parser (training/parser_data.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import LIP20
from recapture.data.ccp import CcpDataset
from recapture.data.formats import read_annotations
from recapture.training.parser_data import CUT_RANGE, Augmentation, ViewMaker, cache_plans, cut_photo, \
    random_augmentation

CCP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
KEYPOINTS = Path(__file__).resolve().parents[1] / "src" / "recapture" / "assets" / "ccp-keypoints.csv"
needs_ccp = pytest.mark.skipif(not CCP.is_dir(), reason="CCP data not present (../shared/data/ccp)")


def standing(hip: float = 100.0, ankle: float = 300.0) -> np.ndarray:
    """``(18, 2)`` keypoints with only the hips and ankles present."""
    keypoints = np.full((18, 2), -1.0)
    for name in ("left_hip", "right_hip"):
        keypoints[KEYPOINT_INDEX[name]] = (hip, 50.0)
    for name in ("left_ankle", "right_ankle"):
        keypoints[KEYPOINT_INDEX[name]] = (ankle, 50.0)
    return keypoints


def test_cut_photo_measures_from_the_hips_to_the_ankles() -> None:
    assert cut_photo(standing(), 0.25, 400) == 150
    assert cut_photo(standing(), -0.3, 400) == 40
    assert cut_photo(standing(), None, 400) == 400
    assert cut_photo(standing(ankle=900.0), 0.9, 400) == 400  # never below the photo
    no_ankles = standing()
    no_ankles[[KEYPOINT_INDEX["left_ankle"], KEYPOINT_INDEX["right_ankle"]]] = -1
    assert cut_photo(no_ankles, 0.25, 400) == 400  # nothing to measure from: the whole photo


def test_random_close_ups_follow_their_share() -> None:
    rng = np.random.default_rng(0)
    none = [random_augmentation(rng, (1, 2), 0.0).cut for _ in range(50)]
    every = [random_augmentation(rng, (1, 2), 1.0).cut for _ in range(50)]
    assert none == [None] * 50
    assert all(c is not None and CUT_RANGE[0] <= c <= CUT_RANGE[1] for c in every)
    some = [random_augmentation(rng, (1, 2), 0.5).cut is not None for _ in range(400)]
    assert 0.4 < np.mean(some) < 0.6


def test_validation_plans_add_each_photos_close_up_after_the_plain_views() -> None:
    plans = cache_plans((3, 5), -1, 0, validation_cut=0.25)
    assert [(i, a.cut, a.flip) for i, a in plans] == [(3, None, False), (5, None, False), (3, 0.25, False),
                                                      (5, 0.25, False)]
    mirrored = cache_plans((3, 5), -1, 0, mirrored=True, validation_cut=0.25)
    assert [(i, a.cut, a.flip) for i, a in mirrored] == [(3, None, True), (5, None, True), (3, 0.25, True),
                                                         (5, 0.25, True)]
    assert cache_plans((3, 5), 2, 0) == cache_plans((3, 5), 2, 0, validation_cut=0.25)  # training: no fixed cut
    assert all(a.cut is None for _, a in cache_plans((3, 5), 2, 0))


@needs_ccp
def test_a_close_up_view_loses_what_lies_below_the_cut(tmp_path: Path) -> None:
    photo_id = 5  # a training photo: standing, full body, shoes visible
    dataset = CcpDataset(CCP, (photo_id,))
    cv2.imwrite(str(tmp_path / f"{photo_id:04d}.png"), (dataset.ccp_labels(photo_id) > 0).astype(np.uint8) * 255)
    maker = ViewMaker(dataset, read_annotations(KEYPOINTS), tmp_path)
    whole, close = maker.view(photo_id), maker.view(photo_id, Augmentation(cut=0.25))
    shoes = [LIP20.index("left_shoe"), LIP20.index("right_shoe")]
    assert np.isin(whole.labels, shoes).any() and not np.isin(close.labels, shoes).any()
    lower = [KEYPOINT_INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    assert (whole.keypoints[lower] >= 0).all() and (close.keypoints[lower] == -1).all()
    assert (close.keypoints[[KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]]] >= 0).all()
    # the close-up's crop is made around what is left: the upper body fills more of it than in the whole view
    upper = LIP20.index("upper_clothes"), LIP20.index("coat"), LIP20.index("face")
    assert np.isin(close.labels, upper).sum() > 1.5 * np.isin(whole.labels, upper).sum()
    # below the photo's end the crop is black and labelled background
    bottom = close.image.reshape(close.image.shape[0], -1).max(axis=1) == 0
    assert bottom[-10:].all() and (close.labels[-10:] == 0).all()


def test_a_feature_cache_of_another_version_or_plan_is_refused(tmp_path: Path) -> None:
    from recapture.data.errors import FormatError
    from recapture.models.parser import CACHED_STAGES
    from recapture.training.parser_data import FeatureCache, plan_digest

    folder = tmp_path / "cache"
    FeatureCache(folder, 3).arrays["done"][1] = True
    reopened = FeatureCache(folder, 3)
    assert len(reopened) == 3 and reopened.arrays["done"][1]  # same plan: resumed, not rebuilt
    with pytest.raises(FormatError, match=r"conv_4.npy: shape \(3, .*expected \(4, "):
        FeatureCache(folder, 4)  # a longer plan would misread the finished rows
    plans = cache_plans((1, 2, 3), -1, seed=0)
    planned = FeatureCache(tmp_path / "planned", 3, plan_digest(plans))
    assert (planned.folder / "plan.txt").is_file() and len(FeatureCache(planned.folder, 3, plan_digest(plans))) == 3
    other = cache_plans((1, 2, 3), -1, seed=0, mirrored=True)  # the same rows, other views
    with pytest.raises(FormatError, match="cache of other views.*delete the folder"):
        FeatureCache(planned.folder, 3, plan_digest(other))
    with pytest.raises(FormatError, match="cache of other views"):
        FeatureCache(folder, 3, plan_digest(plans))  # no plan recorded: which views it holds is unknown
    (folder / f"{CACHED_STAGES[1]}.npy").unlink()  # a cache written before that stage was kept
    with pytest.raises(FormatError, match=f"no {CACHED_STAGES[1]}.npy.*delete the folder"):
        FeatureCache(folder)
