"""SynthHumans body geometry: a posed identity as depth-sorted 2D primitives with part labels.

Every primitive carries a LIP-20 label, a body segment (for garment-local texture coordinates and
keypoint occlusion) and a material (what colours it). Limbs are tapered tubes along bones, the torso
and pelvis are elliptic cylinders seen from the view, skirts and coat tails are hulls over the thighs,
the head (and a hat) are ellipsoids rasterised per pixel in ``render``. Coordinates are canvas pixels
(``x, y``) of a canvas ``supersample`` times the image size, pixel centres on integers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from recapture.body.parts import LIP20
from recapture.data.synthetic.people import Identity
from recapture.data.synthetic.articulation import HEAD_RX, HEAD_RY, J, SPINE, Projection, Skeleton

SEGMENTS: tuple[str, ...] = (
    "background", "torso", "pelvis", "neck", "head", "hair_back",
    "left_upper_arm", "left_forearm", "left_hand", "right_upper_arm", "right_forearm", "right_hand",
    "left_thigh", "left_shin", "left_foot", "right_thigh", "right_shin", "right_foot",
)
SEG: dict[str, int] = {name: i for i, name in enumerate(SEGMENTS)}
MATERIALS: tuple[str, ...] = ("none", "skin", "hair", "top", "bottom", "coat", "shoes", "hat", "sunglasses",
                              "socks", "gloves", "head")
MAT: dict[str, int] = {name: i for i, name in enumerate(MATERIALS)}
L: dict[str, int] = {name: LIP20.index(name) for name in LIP20.names}

# Torso cross-sections: (height above the pelvis, frontal half width W, depth half width D).
_TORSO_LEVELS = np.array([(SPINE - 0.005, 0.06, 0.04), (SPINE - 0.03, 0.125, 0.05), (0.2, 0.11, 0.065),
                          (0.11, 0.09, 0.06), (0.02, 0.1, 0.065), (-0.03, 0.1, 0.065)])
_PELVIS_LEVELS = np.array([(0.11, 0.09, 0.06), (0.0, 0.105, 0.07), (-0.06, 0.085, 0.06)])
_HULL_ANGLES = np.linspace(0.0, 2.0 * np.pi, 12, endpoint=False)
_ARM_BIAS, _WRAP_BIAS, _NECK_BIAS, _PELVIS_BIAS, _HEAD_BIAS = 0.03, 0.015, -0.01, -0.005, 0.005


@dataclass(frozen=True)
class Primitive:
    """A filled shape: ``polygon`` ``(K, 2)`` canvas x/y, or ``ellipsoid`` (head/hat, per pixel)."""

    depth: float
    order: int
    label: int
    segment: int
    material: int
    polygon: np.ndarray | None = None
    ellipsoid: str | None = None


@dataclass(frozen=True)
class Ellipsoid:
    """The head (or hat) as an ellipsoid: canvas ``centre`` (x, y), camera-frame ``rotation``,
    ``radii`` in canvas pixels (local x, y, z)."""

    centre: np.ndarray
    rotation: np.ndarray
    radii: np.ndarray


@dataclass(frozen=True)
class Body:
    """A posed person ready to rasterise.

    ``frames[k]`` ``(2, 3)`` maps canvas ``(x, y, 1)`` to segment ``k``'s local ``(u, v)`` in body units
    (u across the bone, v along it); ``radii[k]`` is the segment's half width in body units (shading).
    ``joints`` are the skeleton's joints in canvas x/y; ``torso_facing`` the cosine between the chest
    normal and the camera.
    """

    primitives: tuple[Primitive, ...]
    frames: np.ndarray
    radii: np.ndarray
    head: Ellipsoid
    hat: Ellipsoid | None
    joints: np.ndarray
    torso_facing: float


@functools.lru_cache(maxsize=8)
def _half_circle(steps: int) -> tuple[np.ndarray, np.ndarray]:
    angles = np.linspace(0.0, np.pi, steps + 1)[:, None]
    return np.cos(angles), np.sin(angles)


def tube(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, cap0: bool = True, cap1: bool = True,
         steps: int = 6) -> np.ndarray:
    """Polygon ``(K, 2)`` of a tapered tube from ``p0`` (radius ``r0``) to ``p1`` (``r1``), round caps."""
    axis = p1 - p0
    length = float(np.hypot(*axis))
    axis = axis / length if length > 1e-9 else np.array([0.0, 1.0])
    normal = np.array([-axis[1], axis[0]])
    cos, sin = _half_circle(steps)
    arc = normal * cos + axis * sin
    end1 = p1 + r1 * arc if cap1 else np.stack([p1 + r1 * normal, p1 - r1 * normal])
    end0 = p0 - r0 * arc if cap0 else np.stack([p0 - r0 * normal, p0 + r0 * normal])
    return np.concatenate([end1, end0])


def _frame(origin: np.ndarray, axis: np.ndarray, scale: float) -> np.ndarray:
    """Affine ``(2, 3)``: canvas x/y -> (u, v) body units along ``axis`` from ``origin``."""
    norm = float(np.hypot(*axis))
    a = axis / norm if norm > 1e-9 else np.array([0.0, 1.0])
    n = np.array([-a[1], a[0]])
    rows = np.stack([n, a]) / scale
    return np.concatenate([rows, -(rows @ origin)[:, None]], axis=1)


class _Builder:
    """Collects primitives of one body; ``scale`` = canvas pixels per body unit."""

    def __init__(self, skeleton: Skeleton, projection: Projection, supersample: int) -> None:
        self.skeleton = skeleton
        self.scale = projection.scale * supersample
        yx = projection(skeleton.joints) * supersample - 0.5
        self.points = yx[:, ::-1].copy()
        self.prims: list[Primitive] = []
        self.frames = np.zeros((len(SEGMENTS), 2, 3))
        self.radii = np.ones(len(SEGMENTS))
        self.projection = projection
        self.supersample = supersample

    def canvas(self, camera_points: np.ndarray) -> np.ndarray:
        return (self.projection(camera_points) * self.supersample - 0.5)[..., ::-1]

    def z(self, *names: str) -> float:
        joints = self.skeleton.joints
        return sum(float(joints[J[n], 2]) for n in names) / len(names)

    def add(self, depth: float, order: int, label: str, segment: str, material: str, polygon: np.ndarray) -> None:
        self.prims.append(Primitive(depth, order, L[label], SEG[segment], MAT[material], polygon))

    def limb(self, segment: str, a: str, b: str, r0: float, r1: float, bias: float,
             layers: list[tuple[str, str, float, float, float]]) -> None:
        """A bone ``a -> b`` with radii (body units) and garment ``layers`` (label, material, t0, t1, grow)."""
        p0, p1 = self.points[J[a]], self.points[J[b]]
        self.frames[SEG[segment]] = _frame(p0, p1 - p0, self.scale)
        self.radii[SEG[segment]] = 0.5 * (r0 + r1)
        depth = self.z(a, b) + bias
        for order, (label, material, t0, t1, grow) in enumerate(layers):
            q0, q1 = p0 + t0 * (p1 - p0), p0 + t1 * (p1 - p0)
            s0, s1 = (r0 + t0 * (r1 - r0)) * grow * self.scale, (r0 + t1 * (r1 - r0)) * grow * self.scale
            self.add(depth, order, label, segment, material, tube(q0, q1, s0, s1, t0 == 0.0, t1 == 1.0 or grow == 1.0))

    def cylinder(self, levels: np.ndarray, width: float, depth_scale: float = 1.0) -> np.ndarray:
        """Outline polygon of an elliptic cylinder along the spine (levels: height, W, D)."""
        torso = self.skeleton.torso_rotation
        pelvis = self.skeleton.joints[J["pelvis"]]
        centres = self.canvas(pelvis + levels[:, :1] * torso[:, 1])
        up = self.points[J["neck"]] - self.points[J["pelvis"]]
        normal = np.array([up[1], -up[0]]) / max(float(np.hypot(*up)), 1e-9)
        lateral, front = torso[:2, 0] * [1, -1], torso[:2, 2] * [1, -1]
        half = np.hypot(levels[:, 1] * float(lateral @ normal), levels[:, 2] * depth_scale * float(front @ normal))
        half = half * width * self.scale
        return np.concatenate([centres + half[:, None] * normal, (centres - half[:, None] * normal)[::-1]])

    def hull(self, top_height: float, length: float, flare: float, legs_width: float, torso_width: float) -> np.ndarray:
        """Convex hull from the waist over both legs down to ``length`` thigh lengths below the hips
        (beyond 1 it continues along the shins), ``flare`` widening the hem."""
        torso = self.skeleton.torso_rotation
        pelvis = self.skeleton.joints[J["pelvis"]]
        pts = [self.canvas(pelvis + top_height * torso[:, 1] + s * 0.09 * torso_width * torso[:, 0]) for s in (-1, 1)]
        circle = np.stack([np.cos(_HULL_ANGLES), np.sin(_HULL_ANGLES)], axis=1)
        for side in ("left", "right"):
            hip, knee, ankle = (self.points[J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
            hem = hip + min(length, 1.0) * (knee - hip) + max(length - 1.0, 0.0) * (ankle - knee)
            pts += list(hip + 0.055 * legs_width * self.scale * circle)
            pts += list(hem + 0.05 * legs_width * flare * self.scale * circle)
        return cv2.convexHull(np.asarray(pts, dtype=np.float32))[:, 0, :].astype(np.float64)


def build_body(identity: Identity, skeleton: Skeleton, projection: Projection, supersample: int) -> Body:
    """Primitives of ``identity`` in the posed ``skeleton`` on a canvas ``supersample`` x the image."""
    b = _Builder(skeleton, projection, supersample)
    fig, outfit = identity.figure, identity.outfit
    top, bottom = outfit.top, ("none" if outfit.top == "dress" else outfit.bottom)
    top_label = "dress" if top == "dress" else "upper_clothes"
    torso_z = b.z("pelvis", "neck")
    # Torso, pelvis and coat.
    pelvis_xy, neck_xy = b.points[J["pelvis"]], b.points[J["neck"]]
    for segment in ("torso", "pelvis"):
        b.frames[SEG[segment]] = _frame(pelvis_xy, pelvis_xy - neck_xy, b.scale)
        b.radii[SEG[segment]] = 0.11 * fig.torso
    lower_label = {"pants": "pants", "shorts": "pants", "skirt": "skirt"}.get(bottom, "dress")
    lower_material = "top" if bottom == "none" else "bottom"
    b.add(torso_z + _PELVIS_BIAS, 0, lower_label, "pelvis", lower_material, b.cylinder(_PELVIS_LEVELS, fig.torso))
    b.add(torso_z, 0, top_label, "torso", "top", b.cylinder(_TORSO_LEVELS, fig.torso))
    torso = skeleton.torso_rotation
    if outfit.coat:
        b.add(torso_z, 1, "coat", "torso", "coat", b.cylinder(_TORSO_LEVELS, fig.torso * 1.1, 1.15))
        if torso[2, 2] > 0.25:
            pelvis3 = skeleton.joints[J["pelvis"]]
            front = 0.065 * fig.torso * 1.15 * torso[:, 2]
            corners = ((SPINE - 0.02, 1), (0.0, 1), (0.0, -1), (SPINE - 0.02, -1))
            strip = [pelvis3 + front + h * torso[:, 1] + s * 0.03 * fig.torso * torso[:, 0] for h, s in corners]
            b.add(torso_z, 2, top_label, "torso", "top", b.canvas(np.array(strip)))
    wrap_z = max(b.z("left_hip", "left_knee"), b.z("right_hip", "right_knee"), torso_z) + _WRAP_BIAS
    if bottom == "skirt" or top == "dress":
        skirt = b.hull(0.11, outfit.skirt_length, 1.6, fig.legs, fig.torso)
        b.add(wrap_z, 0, lower_label, "pelvis", lower_material, skirt)
    if outfit.coat and outfit.coat_length > 0.1:
        b.add(wrap_z, 1, "coat", "pelvis", "coat", b.hull(0.11, outfit.coat_length, 1.4, fig.legs, fig.torso))
    # Neck, head, hair.
    b.limb("neck", "neck", "head", 0.03 * np.sqrt(fig.torso), 0.028, _NECK_BIAS, [("face", "skin", 0.0, 0.7, 1.0)])
    head_rot = skeleton.head_rotation
    head_c = skeleton.joints[J["head"]]
    b.frames[SEG["head"]] = _frame(b.points[J["head"]], b.points[J["head"]] - neck_xy, b.scale)
    head_z = float(head_c[2]) + _HEAD_BIAS
    b.prims.append(Primitive(head_z, 0, L["face"], SEG["head"], MAT["head"], ellipsoid="head"))
    radii = np.array([HEAD_RX, HEAD_RY, HEAD_RX]) * b.scale
    head = Ellipsoid(b.canvas(head_c), head_rot, radii)
    hat = None
    if identity.hat is not None:
        hat = Ellipsoid(b.canvas(head_c + head_rot @ np.array([0.0, 0.012, 0.0])), head_rot, radii * 1.1)
        b.prims.append(Primitive(head_z, 1, L["hat"], SEG["head"], MAT["hat"], ellipsoid="hat"))
        brim = [b.canvas(head_c + head_rot @ (np.array([s * 1.3, 0.3, 0.25]) * [HEAD_RX, HEAD_RY, HEAD_RX]))
                for s in (-1, 1)]
        b.add(head_z, 2, "hat", "head", "hat", tube(brim[0], brim[1], 0.01 * b.scale, 0.01 * b.scale))
    if identity.hair_length != "short":
        drop = 0.2 if identity.hair_length == "long" else 0.04
        neck3 = skeleton.joints[J["neck"]]
        corners = [head_c + torso @ np.array([s * 1.0 * HEAD_RX, 0.01, -0.03]) for s in (1, -1)]
        corners += [neck3 + torso @ np.array([s * 1.35 * HEAD_RX, -drop, -0.06]) for s in (-1, 1)]
        polygon = b.canvas(np.array(corners))
        b.frames[SEG["hair_back"]] = _frame(b.points[J["head"]], neck_xy - b.points[J["head"]], b.scale)
        b.add(float(np.mean(np.array(corners)[:, 2])), 0, "hair", "hair_back", "hair", polygon)
    # Limbs.
    arm_r, leg_r = fig.arms, fig.legs
    for side in ("left", "right"):
        arm_label, leg_label, shoe_label = f"{side}_arm", f"{side}_leg", f"{side}_shoe"
        upper, fore = [(arm_label, "skin", 0.0, 1.0, 1.0)], [(arm_label, "skin", 0.0, 1.0, 1.0)]
        if top == "t_shirt":
            upper.append(("upper_clothes", "top", 0.0, 0.45, 1.15))
        elif top == "long_sleeves":
            upper.append(("upper_clothes", "top", 0.0, 1.0, 1.12))
            fore.append(("upper_clothes", "top", 0.0, 0.9, 1.12))
        if outfit.coat:
            upper.append(("coat", "coat", 0.0, 1.0, 1.25))
            fore.append(("coat", "coat", 0.0, 0.92, 1.25))
        sh, el, wr, ha = (f"{side}_{n}" for n in ("shoulder", "elbow", "wrist", "hand"))
        b.limb(f"{side}_upper_arm", sh, el, 0.032 * arm_r, 0.026 * arm_r, _ARM_BIAS, upper)
        b.limb(f"{side}_forearm", el, wr, 0.025 * arm_r, 0.019 * arm_r, _ARM_BIAS, fore)
        hand = ("glove", "gloves") if outfit.gloves is not None else (arm_label, "skin")
        b.limb(f"{side}_hand", wr, ha, 0.021, 0.016, _ARM_BIAS, [(hand[0], hand[1], 0.0, 1.0, 1.0)])
        thigh, shin = [(leg_label, "skin", 0.0, 1.0, 1.0)], [(leg_label, "skin", 0.0, 1.0, 1.0)]
        if bottom == "pants":
            thigh.append(("pants", "bottom", 0.0, 1.0, 1.1))
            shin.append(("pants", "bottom", 0.0, 0.95, 1.15))
        elif bottom == "shorts":
            thigh.append(("pants", "bottom", 0.0, 0.5, 1.12))
        if outfit.socks is not None and bottom != "pants":
            shin.append(("socks", "socks", 0.82, 1.0, 1.08))
        hp, kn, an, to = (f"{side}_{n}" for n in ("hip", "knee", "ankle", "toe"))
        b.limb(f"{side}_thigh", hp, kn, 0.05 * leg_r, 0.04 * leg_r, 0.0, thigh)
        b.limb(f"{side}_shin", kn, an, 0.037 * leg_r, 0.025 * leg_r, 0.0, shin)
        b.limb(f"{side}_foot", an, to, 0.03, 0.024, 0.01, [(shoe_label, "shoes", 0.0, 1.0, 1.0)])
    primitives = tuple(sorted(b.prims, key=lambda p: (p.depth, p.order)))
    return Body(primitives, b.frames, b.radii, head, hat, b.points, float(torso[2, 2]))


#: Segments on which each COCO-18 joint may be seen (its own limb chain; a joint whose pixel shows any
#: other segment is occluded). Keys are recapture.body.keypoints.KEYPOINT_NAMES.
JOINT_SEGMENTS: dict[str, tuple[str, ...]] = {
    "nose": ("head",), "left_eye": ("head",), "right_eye": ("head",), "left_ear": ("head",), "right_ear": ("head",),
    "neck": ("torso", "neck", "head", "hair_back", "left_upper_arm", "right_upper_arm"),
    **{f"{s}_shoulder": ("torso", f"{s}_upper_arm", "hair_back") for s in ("left", "right")},
    **{f"{s}_elbow": (f"{s}_upper_arm", f"{s}_forearm") for s in ("left", "right")},
    **{f"{s}_wrist": (f"{s}_forearm", f"{s}_hand") for s in ("left", "right")},
    **{f"{s}_hip": ("pelvis", "torso", f"{s}_thigh") for s in ("left", "right")},
    **{f"{s}_knee": ("pelvis", f"{s}_thigh", f"{s}_shin") for s in ("left", "right")},
    **{f"{s}_ankle": (f"{s}_shin", f"{s}_foot") for s in ("left", "right")},
}
