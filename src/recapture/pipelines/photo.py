"""In-the-wild recapture (paper §4.5): photo -> pose, person mask, parsing -> crop to the model frame ->
generate -> inpaint the background where the person was -> composite the new person at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recapture.pipelines.recapture import Recapturer, Result, SourceInput

if TYPE_CHECKING:
    from recapture.pipelines.wild import WildInput


@dataclass(frozen=True)
class PhotoResult:
    """Every intermediate of an in-the-wild recapture, for display and debugging."""

    photo: np.ndarray  # (H, W, 3) uint8 input photo (EXIF-upright RGB)
    keypoints: np.ndarray  # (18, 2) estimated source keypoints in the photo frame
    person_mask: np.ndarray  # (H, W) float person mask
    background: np.ndarray  # (H, W, 3) uint8 photo with the person inpainted away
    composite: np.ndarray  # (H, W, 3) uint8 the recaptured photo
    result: Result  # the model-frame recapture (source crop, layouts, generated person)


def dataset_source(recapturer: Recapturer, source: str | Path, source_pose: str,
                   source_layout: str | Path | None) -> SourceInput:
    """A source whose keypoints (``FILE.csv:ROW`` or JSON, in the image's frame) and parsing PNG are known."""
    from recapture.data.formats import read_layout
    from recapture.pipelines.poses import load_pose
    from recapture.pipelines.wild import load_photo

    if source_layout is None:
        raise ValueError("--source-pose needs --source-layout too (or give neither for a photo in the wild)")
    image = load_photo(source)
    keypoints = load_pose(source_pose, frame=image.shape[:2]).keypoints
    layout = read_layout(source_layout, recapturer.label_set.num_parts)
    return recapturer.prepare_source(image, keypoints, layout)


def wild_source(recapturer: Recapturer, photo: np.ndarray | str | Path, parser: object | None = None,
                layout_path: str | Path | None = None) -> WildInput:
    """Pose, mask, crop and layout of the person in a photo, in the recapturer's model frame.

    Parsing: ``parser`` (any LayoutParser), else a user-supplied LIP-format PNG ``layout_path``, else the
    approximate pose + mask fallback (see docs/in-the-wild.md).
    """
    from recapture.pipelines.wild import (
        FileLayoutParser, PersonSegmenter, PoseEstimator, PoseMaskLayoutParser, load_photo, prepare_wild_input,
    )

    image = load_photo(photo) if isinstance(photo, (str, Path)) else np.asarray(photo)
    if parser is None:
        parser = FileLayoutParser(layout_path) if layout_path is not None else PoseMaskLayoutParser()
    with PoseEstimator() as estimator:
        return prepare_wild_input(image, recapturer.image_size, recapturer.label_set, estimator,
                                  PersonSegmenter(), parser)


def recapture_photo(recapturer: Recapturer, photo: np.ndarray | str | Path, target_pose: np.ndarray, *,
                    edits: object | None = None, parser: object | None = None, layout_path: str | Path | None = None,
                    inpaint_method: str = "telea") -> PhotoResult:
    """Recapture the person of a photo into ``target_pose`` ((18, 2) y/x in the model frame); parsing as in
    :func:`wild_source`."""
    from recapture.pipelines.wild import composite, inpaint_background, layout_alpha

    wild = wild_source(recapturer, photo, parser, layout_path)
    result = recapturer(wild.model_image, target_pose, source_pose=wild.model_keypoints,
                        source_layout=wild.layout, edits=edits)
    background = inpaint_background(wild.photo, wild.person_mask, method=inpaint_method)
    final = composite(background, result.image, layout_alpha(result.target_layout), wild.crop)
    return PhotoResult(photo=wild.photo, keypoints=wild.keypoints, person_mask=wild.person_mask,
                       background=background, composite=final, result=result)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Skeleton overlay: limbs as lines, joints as dots (missing joints skipped)."""
    import cv2

    from recapture.body.keypoints import LIMBS, missing_mask

    out = np.ascontiguousarray(image.copy())
    size = radius or max(1, round(min(image.shape[:2]) / 80))
    present = ~missing_mask(keypoints)
    for a, b in LIMBS:
        if present[a] and present[b]:
            pa = (int(round(keypoints[a, 1])), int(round(keypoints[a, 0])))
            pb = (int(round(keypoints[b, 1])), int(round(keypoints[b, 0])))
            cv2.line(out, pa, pb, (0, 220, 255), max(1, size // 2), cv2.LINE_AA)
    for joint in np.flatnonzero(present):
        centre = (int(round(keypoints[joint, 1])), int(round(keypoints[joint, 0])))
        cv2.circle(out, centre, size, (255, 40, 40), -1, cv2.LINE_AA)
    return out
