"""SynthHumans contact sheet: identities x poses, each cell the image beside its colourised layout with
the keypoints drawn (the person's left joints blue, right joints red, centre joints yellow)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_NAMES
from recapture.body.parts import LIP20
from recapture.data.synthetic.people import sample_identity
from recapture.data.synthetic.render import render
from recapture.data.synthetic.writer import sample_shot

_SIDE_COLOURS = {"left": (40, 90, 255), "right": (255, 40, 40)}
_CENTRE_COLOUR = (255, 220, 0)


def parse_size(text: str) -> tuple[int, int]:
    """``"256x176"`` -> ``(256, 176)`` (H x W); ValueError otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size must look like HxW, e.g. 256x176, got {text!r}")
    return int(parts[0]), int(parts[1])


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int = 1) -> np.ndarray:
    """Copy of ``(H, W, 3)`` RGB ``image`` with the present ``(18, 2)`` y/x keypoints drawn as dots."""
    out = image.copy()
    for name, (y, x) in zip(KEYPOINT_NAMES, np.asarray(keypoints)):
        if y < 0 or x < 0:
            continue
        colour = _SIDE_COLOURS.get(name.split("_")[0], _CENTRE_COLOUR)
        cv2.circle(out, (int(x), int(y)), radius, colour, thickness=-1)
    return out


def contact_sheet(seed: int = 0, size: tuple[int, int] = (256, 176), people: int = 4, poses: int = 5,
                  background: str = "plain", supersample: int = 2) -> np.ndarray:
    """``(people * H, poses * 2 * W, 3)`` uint8 RGB sheet of the first ``people`` identities of ``seed``."""
    rows = []
    radius = max(1, size[0] // 100)
    for person in range(people):
        identity = sample_identity(seed, person)
        cells = []
        for pose_index in range(poses):
            pose, scene = sample_shot(seed, person, pose_index, background, crop_probability=0.2)
            rendering = render(identity, pose, scene, size, supersample)
            layout = draw_keypoints(LIP20.colorize(rendering.layout), rendering.keypoints, radius)
            cells += [rendering.image, layout]
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def write_preview(path: str | Path, seed: int = 0, size: tuple[int, int] = (256, 176), people: int = 4,
                  poses: int = 5, background: str = "plain") -> Path:
    """Write :func:`contact_sheet` as a PNG at ``path``; returns the path."""
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(seed, size, people, poses, background)
    if not cv2.imwrite(str(path), np.ascontiguousarray(sheet[..., ::-1])):
        raise OSError(f"cannot write preview {path} (use a .png name)")
    return path
