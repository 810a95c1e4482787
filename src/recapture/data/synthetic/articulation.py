"""SynthHumans poses: an articulated 3D stick skeleton with human joint limits, a view and a framing.

Person frame (body units, 1 = standing height): ``X`` = the person's left, ``Y`` = up, ``Z`` = the
direction the person faces. The camera frame is the person frame turned by the view ``yaw`` about
``Y``; the projection is orthographic with ``z`` towards the camera (larger ``z`` = nearer). Yaw 0 is
a front view (the person's left appears on the image right), 180 a back view, 90 shows the person's
right side (facing the image right) and -90 the left side.

A :class:`Articulation` is resolution independent (the framing is stored as fractions of the image size).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Skeleton joints (internal order; sides are the person's).
JOINTS: tuple[str, ...] = (
    "pelvis", "neck", "head",
    "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_toe",
    "right_hip", "right_knee", "right_ankle", "right_toe",
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)
J: dict[str, int] = {name: i for i, name in enumerate(JOINTS)}
FACE_POINTS: tuple[str, ...] = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

PELVIS_Y, HIP_HALF, SPINE, SHOULDER_HALF, SHOULDER_DROP = 0.52, 0.06, 0.30, 0.115, 0.02
NECK_TO_HEAD, HEAD_RX, HEAD_RY = 0.095, 0.06, 0.072
UPPER_ARM, FOREARM, HAND = 0.165, 0.145, 0.06
THIGH, SHIN, FOOT = 0.235, 0.235, 0.085
TOP_Y = PELVIS_Y + SPINE + NECK_TO_HEAD + HEAD_RY  # top of the head standing upright

#: Head-local directions of the face points (x = left, y = up, z = forward), scaled by the head radii.
_FACE_DIRECTIONS = np.array([
    (0.0, -0.1, 1.0), (0.36, 0.18, 0.92), (-0.36, 0.18, 0.92), (1.0, 0.0, -0.05), (-1.0, 0.0, -0.05),
])
#: Face points are placed this far out along their direction (inside the head outline).
FACE_DEPTH = 0.7

VIEWS: tuple[str, ...] = ("front", "back", "right_side", "left_side")
_VIEW_YAW = {"front": 0.0, "back": 180.0, "right_side": 90.0, "left_side": -90.0}

# Joint limits in degrees: (low, high).
LIMITS: dict[str, tuple[float, float]] = {
    "arm_elevation": (0.0, 170.0), "arm_azimuth": (-90.0, 115.0), "elbow": (0.0, 145.0),
    "arm_twist": (-60.0, 90.0), "hip_flexion": (-30.0, 110.0), "hip_abduction": (-10.0, 45.0),
    "knee": (0.0, 140.0), "toe_out": (-10.0, 30.0), "torso_pitch": (-10.0, 20.0), "torso_roll": (-10.0, 10.0),
    "torso_twist": (-25.0, 25.0), "head_yaw": (-45.0, 45.0), "head_pitch": (-20.0, 25.0), "head_roll": (-15.0, 15.0),
}


@dataclass(frozen=True)
class Articulation:
    """One body pose, view and framing.

    Angles in degrees. ``arms[s]`` / ``legs[s]`` for s = 0 (left), 1 (right): arms are
    (elevation, azimuth, elbow, twist), legs (flexion, abduction, knee, toe_out). ``torso`` and ``head``
    are (pitch, roll, twist/yaw). ``height`` is the standing height in image heights, ``top`` the image
    row of the head top and ``centre`` the column of the pelvis (fractions of H and W).
    """

    view: str
    yaw: float
    torso: tuple[float, float, float]
    head: tuple[float, float, float]
    arms: tuple[tuple[float, float, float, float], tuple[float, float, float, float]]
    legs: tuple[tuple[float, float, float, float], tuple[float, float, float, float]]
    height: float
    top: float
    centre: float


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _perpendicular(direction: np.ndarray, towards: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Unit component of ``towards`` perpendicular to unit ``direction`` (``fallback`` if parallel)."""
    for vector in (towards, fallback):
        p = vector - direction * float(direction @ vector)
        norm = float(np.linalg.norm(p))
        if norm > 1e-6:
            return p / norm
    return np.array([1.0, 0.0, 0.0])


def _rotate_about(vector: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``vector`` about unit ``axis``."""
    c, s = np.cos(angle), np.sin(angle)
    return vector * c + np.cross(axis, vector) * s + axis * float(axis @ vector) * (1.0 - c)


@dataclass(frozen=True)
class Skeleton:
    """Joints in the camera frame (``(len(JOINTS), 3)`` x/y/z body units), torso and head rotations
    (person-local -> camera, 3x3) and ``facing``: camera-facing cosine of each face point."""

    joints: np.ndarray
    torso_rotation: np.ndarray
    head_rotation: np.ndarray
    facing: dict[str, float]


def _arm(shoulder: np.ndarray, angles: tuple[float, ...], side: float, torso: np.ndarray) -> list[np.ndarray]:
    elevation, azimuth, elbow, twist = np.radians(angles)
    local = np.array([side * np.sin(elevation) * np.cos(azimuth), -np.cos(elevation),
                      np.sin(elevation) * np.sin(azimuth)])
    upper = torso @ local
    bend = _perpendicular(upper, torso @ np.array([0.0, 0.0, 1.0]), torso @ np.array([-side, 0.0, 0.0]))
    bend = _rotate_about(bend, upper, side * twist)
    fore = np.cos(elbow) * upper + np.sin(elbow) * bend
    elbow_p = shoulder + UPPER_ARM * upper
    wrist = elbow_p + FOREARM * fore
    return [shoulder, elbow_p, wrist, wrist + HAND * fore]


def _leg(hip: np.ndarray, angles: tuple[float, ...], side: float) -> list[np.ndarray]:
    """Hip flexion about X, then abduction about Z; the knee bends backwards in the leg's own frame."""
    flexion, abduction, knee, toe_out = np.radians(angles)
    frame = _rot_z(side * abduction) @ _rot_x(-flexion)
    thigh, back = frame @ np.array([0.0, -1.0, 0.0]), frame @ np.array([0.0, 0.0, -1.0])
    shin = np.cos(knee) * thigh + np.sin(knee) * back
    forward = _rotate_about(np.sin(knee) * thigh - np.cos(knee) * back, shin, -side * toe_out)
    knee_p = hip + THIGH * thigh
    ankle = knee_p + SHIN * shin
    return [hip, knee_p, ankle, ankle + FOOT * forward - 0.3 * FOOT * shin]


def build_skeleton(pose: Articulation) -> Skeleton:
    """3D joints of ``pose`` in the camera frame."""
    pitch, roll, twist = np.radians(pose.torso)
    torso = _rot_y(twist) @ _rot_x(pitch) @ _rot_z(roll)
    head_pitch, head_roll, head_yaw = np.radians(pose.head)
    head_rot = torso @ _rot_y(head_yaw) @ _rot_x(head_pitch) @ _rot_z(head_roll)
    pelvis = np.array([0.0, PELVIS_Y, 0.0])
    neck = pelvis + torso @ np.array([0.0, SPINE, 0.0])
    head = neck + head_rot @ np.array([0.0, NECK_TO_HEAD, 0.0])
    joints = {"pelvis": pelvis, "neck": neck, "head": head}
    for side_name, side, index in (("left", 1.0, 0), ("right", -1.0, 1)):
        shoulder = neck + torso @ np.array([side * SHOULDER_HALF, -SHOULDER_DROP, 0.0])
        arm = _arm(shoulder, pose.arms[index], side, torso)
        leg = _leg(pelvis + np.array([side * HIP_HALF, 0.0, 0.0]), pose.legs[index], side)
        for name, point in zip(("shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "toe"), arm + leg):
            joints[f"{side_name}_{name}"] = point
    radii = np.array([HEAD_RX, HEAD_RY, HEAD_RX])
    view = _rot_y(np.radians(pose.yaw))
    facing = {}
    for name, direction in zip(FACE_POINTS, _FACE_DIRECTIONS):
        unit = direction / np.linalg.norm(direction)
        joints[name] = head + head_rot @ (FACE_DEPTH * unit * radii)
        facing[name] = float((view @ head_rot @ unit)[2])
    points = np.stack([view @ joints[name] for name in JOINTS])
    return Skeleton(points, view @ torso, view @ head_rot, facing)


@dataclass(frozen=True)
class Projection:
    """Orthographic camera: image ``(y, x) = (top_px + scale * (TOP_Y - y), centre_px + scale * x)``."""

    scale: float
    top_px: float
    centre_px: float

    @staticmethod
    def of(pose: Articulation, size: tuple[int, int]) -> "Projection":
        height, width = size
        return Projection(pose.height * height / TOP_Y, pose.top * height, pose.centre * width)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` camera points -> ``(..., 2)`` continuous image y/x (pixel i spans [i, i+1))."""
        points = np.asarray(points, dtype=np.float64)
        return np.stack([self.top_px + self.scale * (TOP_Y - points[..., 1]),
                         self.centre_px + self.scale * points[..., 0]], axis=-1)


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _clip(name: str, value: float) -> float:
    low, high = LIMITS[name]
    return float(np.clip(value, low, high))


def _arm_angles(rng: np.random.Generator, style: str, swing: float) -> tuple[float, float, float, float]:
    if style == "raised":
        angles = (_u(rng, 90, 170), _u(rng, -10, 60), _u(rng, 0, 120), _u(rng, -30, 60))
    elif style == "hip":
        angles = (_u(rng, 30, 50), _u(rng, -25, 10), _u(rng, 95, 135), _u(rng, 40, 90))
    elif style == "front":
        angles = (_u(rng, 15, 70), _u(rng, 70, 110), _u(rng, 60, 140), _u(rng, 20, 90))
    elif style == "free":
        angles = (_u(rng, 0, 150), _u(rng, -40, 115), _u(rng, 0, 145), _u(rng, -60, 90))
    else:
        angles = (abs(swing) + _u(rng, 3, 15), 90.0 * np.sign(swing) + _u(rng, -15, 15), _u(rng, 0, 35),
                  _u(rng, -20, 30))
    names = ("arm_elevation", "arm_azimuth", "elbow", "arm_twist")
    return tuple(_clip(n, v) for n, v in zip(names, angles))  # type: ignore[return-value]


def _leg_angles(rng: np.random.Generator, style: str, swing: float) -> tuple[float, float, float, float]:
    if style == "sit":
        angles = (_u(rng, 60, 100), _u(rng, 0, 20), _u(rng, 60, 100), _u(rng, 0, 20))
    elif style == "free":
        angles = (_u(rng, -20, 90), _u(rng, -5, 40), _u(rng, 0, 120), _u(rng, -10, 30))
    else:
        knee = _u(rng, 0, 10) + (max(0.0, -swing) * 1.2 if swing else 0.0)
        angles = (swing + _u(rng, -4, 6), _u(rng, 0, 10), knee, _u(rng, 0, 20))
    names = ("hip_flexion", "hip_abduction", "knee", "toe_out")
    return tuple(_clip(n, v) for n, v in zip(names, angles))  # type: ignore[return-value]


# Framings: ranges of (height, top) in image heights. ``zoom`` is the cropped framing of the data sets; ``knee``
# and ``hips`` split it like DeepFashion's photos, whose frame ends between knee and ankle or above the knees.
FRAMINGS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "whole": ((0.8, 0.92), (0.03, 0.08)), "zoom": ((1.15, 1.8), (0.02, 0.06)),
    "knee": ((1.18, 1.32), (0.02, 0.06)), "hips": ((1.5, 1.9), (0.02, 0.06))}


def sample_articulation(rng: np.random.Generator, crop_probability: float = 0.25,
                        view: str | None = None) -> Articulation:
    """A random pose: a body style (standing, walking, arms raised, hands on hips, sitting...), a view
    (front 50 %, back 20 %, sides 15 % each) with yaw jitter, and a framing (full body or, with
    ``crop_probability``, zoomed so that the legs leave the frame)."""
    view = view or str(rng.choice(VIEWS, p=[0.5, 0.2, 0.15, 0.15]))
    jitter = 30.0 if view == "front" else 20.0
    yaw = _VIEW_YAW[view] + _u(rng, -jitter, jitter)
    body = str(rng.choice(("stand", "walk", "arms", "sit", "free"), p=[0.35, 0.25, 0.2, 0.08, 0.12]))
    swing = _u(rng, 10, 35) * (1 if rng.random() < 0.5 else -1) if body == "walk" else 0.0
    arm_styles = {"stand": ("hang", "hip", "front"), "walk": ("hang",), "arms": ("raised", "hip", "front", "hang"),
                  "sit": ("hang", "front"), "free": ("free",)}[body]
    arms = tuple(_arm_angles(rng, str(rng.choice(arm_styles)), -swing if index == 0 else swing)
                 for index in range(2))
    leg_style = {"sit": "sit", "free": "free"}.get(body, "stand")
    legs = tuple(_leg_angles(rng, leg_style, swing if index == 0 else -swing) for index in range(2))
    torso = (_clip("torso_pitch", rng.normal(2, 5)), _clip("torso_roll", rng.normal(0, 4)),
             _clip("torso_twist", rng.normal(0, 8)))
    head = (_clip("head_pitch", rng.normal(0, 7)), _clip("head_roll", rng.normal(0, 5)),
            _clip("head_yaw", rng.normal(0, 14)))
    (height_low, height_high), (top_low, top_high) = FRAMINGS["zoom" if rng.random() < crop_probability else "whole"]
    height, top = _u(rng, height_low, height_high), _u(rng, top_low, top_high)
    return Articulation(view=view, yaw=yaw, torso=torso, head=head, arms=arms, legs=legs,  # type: ignore[arg-type]
                height=height, top=top, centre=0.5 + _u(rng, -0.08, 0.08))


def reframed(articulation: Articulation, framing: str, rng: np.random.Generator) -> Articulation:
    """``articulation`` shot with a height and top drawn from :data:`FRAMINGS` ``[framing]``."""
    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}; expected one of {sorted(FRAMINGS)}")
    (height_low, height_high), (top_low, top_high) = FRAMINGS[framing]
    return replace(articulation, height=_u(rng, height_low, height_high), top=_u(rng, top_low, top_high))


# How DeepFashion's 8,670 test pairs are framed (source, target), counted once from the keypoints of
# `fasion-annotation-test.csv`: "whole" shows an ankle, "knee" a knee and no ankle, "hips" a hip and no knee.
# Only these counts are used (SynthHumans pairs shot alike), never a pose or an image.
DEEPFASHION_FRAMINGS: dict[tuple[str, str], int] = {
    ("hips", "hips"): 3176, ("hips", "whole"): 1479, ("whole", "hips"): 1479, ("whole", "whole"): 568,
    ("knee", "knee"): 446, ("hips", "knee"): 384, ("knee", "hips"): 384, ("knee", "whole"): 377,
    ("whole", "knee"): 377}


def deepfashion_framing(rng: np.random.Generator) -> tuple[str, str]:
    """A (source, target) framing drawn with DeepFashion's test proportions (:data:`DEEPFASHION_FRAMINGS`)."""
    kinds = list(DEEPFASHION_FRAMINGS)
    counts = np.array([DEEPFASHION_FRAMINGS[kind] for kind in kinds], dtype=np.float64)
    return kinds[int(rng.choice(len(kinds), p=counts / counts.sum()))]
