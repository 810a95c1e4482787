"""SynthHumans rasteriser: depth-sorted primitives -> anti-aliased image, LIP-20 layout and keypoints,
over a plain / soft-gradient (DeepFashion-like) or cluttered (Market-like) background.

The body is drawn with the painter's algorithm on a canvas ``supersample`` times the image size: each
primitive writes (label, segment, material) per sample. The image is the area average of the shaded
samples composited over the background; the layout is each pixel's majority label (ties go to the
body, then to the lower label). Keypoints are the projected COCO-18 joints, -1 when outside the image,
facing away (eyes and nose in a back view, the far ear in a side view), or occluded: a joint is kept
only when every sample of its pixel shows one of its own segments (``shapes.JOINT_SEGMENTS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_NAMES
from recapture.data.synthetic.people import Identity, Texture
from recapture.data.synthetic.articulation import J, Articulation, Projection, build_skeleton
from recapture.data.synthetic.shapes import JOINT_SEGMENTS, MAT, SEG, Body, Ellipsoid, L, Primitive, build_body

NUM_LABELS = 20
#: Minimum camera-facing cosine for a face keypoint to be reported.
FACING_THRESHOLD: dict[str, float] = {"nose": -0.1, "left_eye": 0.2, "right_eye": 0.2,
                                      "left_ear": -0.35, "right_ear": -0.35}
_EYES = np.array([(0.36, 0.18, 0.92), (-0.36, 0.18, 0.92)]) / np.linalg.norm([0.36, 0.18, 0.92])
_SHIFT = 4
#: ``_OWN_SEGMENTS[k, segment]``: segment may show keypoint ``k`` (from ``shapes.JOINT_SEGMENTS``).
_OWN_SEGMENTS = np.zeros((len(KEYPOINT_NAMES), len(SEG)), bool)
for _k, _name in enumerate(KEYPOINT_NAMES):
    _OWN_SEGMENTS[_k, [SEG[g] for g in JOINT_SEGMENTS[_name]]] = True


BACKGROUND_KINDS: tuple[str, ...] = ("plain", "cluttered")


@dataclass(frozen=True)
class Clutter:
    """One background object: ``kind`` rect | ellipse | line, ``box`` (y0, x0, y1, x1) in image fractions."""

    kind: str
    colour: tuple[float, float, float]
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Background:
    """A background: vertical gradient ``top`` -> ``bottom`` (RGB), a ``floor`` band from row fraction
    ``floor_y`` (cluttered only), objects, a blur (in image heights) and the seed of its pixel noise."""

    kind: str
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    floor: tuple[float, float, float] | None
    floor_y: float
    clutter: tuple[Clutter, ...]
    blur: float
    noise: float
    noise_seed: int


def _muted(rng: np.random.Generator, low: float, high: float) -> tuple[float, float, float]:
    base = rng.uniform(low, high)
    return tuple(float(v) for v in np.clip(base + rng.normal(0.0, 18.0, 3), 0, 255))  # type: ignore[return-value]


def sample_background(rng: np.random.Generator, kind: str) -> Background:
    """A random background of ``kind`` (see :data:`BACKGROUND_KINDS`)."""
    if kind not in BACKGROUND_KINDS:
        raise ValueError(f"unknown background {kind!r}; valid: {', '.join(BACKGROUND_KINDS)}")
    if kind == "plain":
        top = _muted(rng, 190, 250)
        bottom = top if rng.random() < 0.5 else _muted(rng, 170, 245)
        return Background(kind, top, bottom, None, 1.0, (), 0.0, 0.0, 0)
    clutter = []
    for _ in range(int(rng.integers(6, 16))):
        shape = str(rng.choice(("rect", "ellipse", "line"), p=[0.5, 0.3, 0.2]))
        y0, x0 = rng.uniform(-0.1, 0.9), rng.uniform(-0.2, 1.0)
        y1, x1 = y0 + rng.uniform(0.05, 0.6), x0 + rng.uniform(0.05, 0.6)
        clutter.append(Clutter(shape, _muted(rng, 40, 220), (float(y0), float(x0), float(y1), float(x1))))
    return Background(kind, _muted(rng, 80, 200), _muted(rng, 60, 180), _muted(rng, 50, 170),
                      float(rng.uniform(0.55, 0.85)), tuple(clutter), float(rng.uniform(0.003, 0.01)),
                      float(rng.uniform(2.0, 6.0)), int(rng.integers(2**31)))


def draw_background(background: Background, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB in [0, 255]."""
    height, width = size
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.asarray(background.top, np.float32)
    bottom = np.asarray(background.bottom, np.float32)
    column = top + t * (bottom - top)
    image = np.ascontiguousarray(np.broadcast_to(column, (height, width, 3)), dtype=np.float32)
    if background.floor is not None:
        image[int(background.floor_y * height):] = background.floor
    for item in background.clutter:
        y0, x0, y1, x1 = (int(round(v * s)) for v, s in zip(item.box, (height, width, height, width)))
        if item.kind == "rect":
            cv2.rectangle(image, (x0, y0), (x1, y1), item.colour, thickness=-1)
        elif item.kind == "ellipse":
            centre = ((x0 + x1) // 2, (y0 + y1) // 2)
            cv2.ellipse(image, centre, (max(1, (x1 - x0) // 2), max(1, (y1 - y0) // 2)), 0, 0, 360, item.colour, -1)
        else:
            cv2.line(image, (x0, y0), (x0 + (x1 - x0) // 6, y1), item.colour, thickness=max(1, width // 40))
    if background.blur > 0:
        cv2.GaussianBlur(image, (0, 0), background.blur * height, dst=image)
    if background.noise > 0:
        noise = np.random.default_rng(background.noise_seed).normal(0.0, background.noise, image.shape)
        image += noise.astype(np.float32)
    return image


@dataclass(frozen=True)
class Rendering:
    """One rendered person: ``image`` ``(H, W, 3)`` uint8 RGB, ``layout`` ``(H, W)`` uint8 LIP-20 labels,
    ``keypoints`` ``(18, 2)`` int64 y/x (-1 missing)."""

    image: np.ndarray
    layout: np.ndarray
    keypoints: np.ndarray


def ellipsoid_surface(ellipsoid: Ellipsoid, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Front surface of an ellipsoid under canvas pixels: ``(inside (N,) bool, local unit coords (N, 3))``.

    Local coordinates are the head frame's (x = the person's left, y = up, z = forward).
    """
    m = (ellipsoid.rotation / ellipsoid.radii[None, :]).T  # diag(1/r) @ R^T
    offset = np.stack([xs - ellipsoid.centre[0], ellipsoid.centre[1] - ys, np.zeros_like(xs, dtype=np.float64)])
    a = m @ offset
    b = m[:, 2:3]
    bb = float((b * b).sum())
    ab = (a * b).sum(axis=0)
    disc = ab * ab - bb * ((a * a).sum(axis=0) - 1.0)
    inside = disc >= 0.0
    z = (-ab + np.sqrt(np.maximum(disc, 0.0))) / bb
    return inside, (a + z * b).T


def _head_labels(identity: Identity, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LIP-20 label and material per head-surface point: hair above the hairline, sunglasses, else face."""
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    back = -0.45 if identity.hair_length == "short" else -0.75
    hairline = np.interp(z, [-0.2, 0.3], [back, identity.hairline])
    label = np.full(len(local), L["face"], np.uint8)
    material = np.full(len(local), MAT["skin"], np.uint8)
    hair = y > hairline
    label[hair], material[hair] = L["hair"], MAT["hair"]
    if identity.sunglasses:
        glasses = (z > 0.5) & (np.abs(y - 0.18) < 0.14) & (np.abs(x) < 0.78)
        label[glasses], material[glasses] = L["sunglasses"], MAT["sunglasses"]
    return label, material


def _draw_ellipsoid(canvas: np.ndarray, primitive: Primitive, body: Body, identity: Identity) -> None:
    ellipsoid = body.head if primitive.ellipsoid == "head" else body.hat
    assert ellipsoid is not None
    reach = float(ellipsoid.radii.max()) + 1.0
    (cx, cy), (h, w) = ellipsoid.centre, canvas.shape[:2]
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, w)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1]
    inside, local = ellipsoid_surface(ellipsoid, xs.ravel().astype(np.float64), ys.ravel().astype(np.float64))
    if primitive.ellipsoid == "head":
        label, material = _head_labels(identity, local)
    else:
        inside &= local[:, 1] > 0.3
        label = np.full(len(local), L["hat"], np.uint8)
        material = np.full(len(local), MAT["hat"], np.uint8)
    block = canvas[y0:y1, x0:x1].reshape(-1, 3)
    block[inside, 0], block[inside, 1], block[inside, 2] = label[inside], primitive.segment, material[inside]
    canvas[y0:y1, x0:x1] = block.reshape(y1 - y0, x1 - x0, 3)


def rasterise(body: Body, identity: Identity, canvas_size: tuple[int, int]) -> np.ndarray:
    """``(Hs, Ws, 3)`` uint8 canvas of (label, segment, material) per sample, painter's order."""
    canvas = np.zeros((*canvas_size, 3), np.uint8)
    scale = float(1 << _SHIFT)
    for primitive in body.primitives:
        if primitive.polygon is None:
            _draw_ellipsoid(canvas, primitive, body, identity)
            continue
        points = np.round(primitive.polygon * scale).astype(np.int32)
        cv2.fillPoly(canvas, [points], (primitive.label, primitive.segment, primitive.material), cv2.LINE_8, _SHIFT)
    return canvas


def texture_colours(texture: Texture, u: np.ndarray, v: np.ndarray, patch_ok: np.ndarray) -> np.ndarray:
    """``(N, 3)`` float32 colours of ``texture`` at garment-local ``(u, v)`` body units.

    ``patch_ok`` marks points where a printed patch may appear (the chest, seen from the front).
    """
    colour, accent = np.asarray(texture.colour, np.float32), np.asarray(texture.accent, np.float32)
    period = texture.period
    if texture.kind == "stripes":
        s = u * np.cos(texture.angle) + v * np.sin(texture.angle)
        mask = np.mod(s / period, 1.0) < texture.duty
    elif texture.kind == "checks":
        mask = (np.floor(u / period) + np.floor(v / period)).astype(np.int64) % 2 == 1
    elif texture.kind == "dots":
        fu, fv = np.mod(u / period, 1.0) - 0.5, np.mod(v / period, 1.0) - 0.5
        mask = fu * fu + fv * fv < (0.6 * texture.duty) ** 2
    elif texture.kind == "patch":
        box = (np.abs(u) < 0.04) & (v < -0.17) & (v > -0.25)
        ring = (u * u + (v + 0.21) ** 2) < 0.018 ** 2
        mask = patch_ok & box & ~ring
    else:
        return np.broadcast_to(colour, (len(u), 3))
    return np.where(mask[:, None], accent, colour)


def _colours(body: Body, identity: Identity, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shaded colours of the body samples: ``(flat sample indices, (N, 3) float32 RGB)``."""
    width = canvas.shape[1]
    segment = canvas[..., 1].ravel()
    index = np.flatnonzero(segment)
    seg, mat = segment[index], canvas[..., 2].ravel()[index]
    ys, xs = np.divmod(index, width)
    ys, xs = ys.astype(np.float32), xs.astype(np.float32)
    frames = body.frames.reshape(-1, 6).T.astype(np.float32)
    u = frames[0][seg] * xs + frames[1][seg] * ys + frames[2][seg]
    v = frames[3][seg] * xs + frames[4][seg] * ys + frames[5][seg]
    relative = u / body.radii.astype(np.float32)[seg]
    shade = np.clip(1.0 - 0.35 * relative * relative + 0.06 * relative, 0.55, 1.05)
    outfit = identity.outfit
    plain = {"skin": identity.skin, "hair": identity.hair, "shoes": identity.shoes, "hat": identity.hat,
             "sunglasses": (22, 22, 28), "socks": outfit.socks, "gloves": outfit.gloves}
    lut = np.zeros((len(MAT), 3), np.float32)
    for name, colour in plain.items():
        lut[MAT[name]] = (0, 0, 0) if colour is None else colour
    out = np.take(lut, mat, axis=0)
    patch_ok = (seg == SEG["torso"]) & (body.torso_facing > 0.3)
    garments = (("top", outfit.top_texture), ("bottom", outfit.bottom_texture), ("coat", outfit.coat_texture))
    for name, texture in garments:
        pick = mat == MAT[name]
        if pick.any():
            out[pick] = texture_colours(texture, u[pick], v[pick], patch_ok[pick])
    head = seg == SEG["head"]
    if head.any():
        on_hat = canvas[..., 0].ravel()[index[head]] == L["hat"]
        ellipsoids = [(body.head, ~on_hat)] + ([(body.hat, on_hat)] if body.hat is not None else [])
        for ellipsoid, pick in ellipsoids:
            where = np.flatnonzero(head)[pick]
            _, local = ellipsoid_surface(ellipsoid, xs[where], ys[where])
            facing = (local @ ellipsoid.rotation.T)[:, 2]
            shade[where] = 0.7 + 0.3 * np.clip(facing, 0.0, 1.0)
            if ellipsoid is body.head:
                skin = mat[where] == MAT["skin"]
                eye = ((local[:, None, :] - _EYES[None]) ** 2).sum(-1).min(axis=1) < 0.018
                mouth = (np.abs(local[:, 0]) < 0.22) & (np.abs(local[:, 1] + 0.5) < 0.05) & (local[:, 2] > 0.5)
                out[where[skin & eye]] = (35, 28, 26)
                out[where[skin & mouth]] = np.asarray(identity.skin, np.float32) * (0.7, 0.45, 0.45)
    hand = (seg == SEG["left_hand"]) | (seg == SEG["right_hand"])
    shade[hand] = np.maximum(shade[hand], 0.8)
    return index, out * shade[:, None].astype(np.float32)


def majority_labels(labels: np.ndarray, supersample: int) -> np.ndarray:
    """``(H*s, W*s)`` labels -> ``(H, W)``: the most frequent label of each s x s block (ties go to the
    body over the background, then to the lower label)."""
    s = supersample
    samples = [labels[i::s, j::s] for i in range(s) for j in range(s)]
    low, high = samples[0].copy(), samples[0].copy()
    for sample in samples[1:]:
        np.minimum(low, sample, out=low)
        np.maximum(high, sample, out=high)
    out = high
    mixed = np.flatnonzero(low != high)
    if len(mixed):
        blocks = np.stack([sample.reshape(-1)[mixed] for sample in samples], axis=1)
        flat = (np.arange(len(mixed))[:, None] * NUM_LABELS + blocks).ravel()
        counts = np.bincount(flat, minlength=len(mixed) * NUM_LABELS).reshape(len(mixed), NUM_LABELS) * 2
        counts[:, 0] -= 1
        out.reshape(-1)[mixed] = counts.argmax(axis=1)
    return out


def keypoints_of(body: Body, skeleton_facing: dict[str, float], canvas: np.ndarray, supersample: int,
                 size: tuple[int, int]) -> np.ndarray:
    """``(18, 2)`` int64 COCO-18 keypoints (y/x) with the visibility rules of this module."""
    height, width = size
    s = supersample
    xy = body.joints / s + 0.5 / s  # canvas -> continuous image coordinates
    xy_neck = 0.5 * (xy[J["left_shoulder"]] + xy[J["right_shoulder"]])
    out = np.full((len(KEYPOINT_NAMES), 2), -1, np.int64)
    for k, name in enumerate(KEYPOINT_NAMES):
        x, y = xy_neck if name == "neck" else xy[J[name]]
        px, py = int(np.floor(x)), int(np.floor(y))
        if not (0 <= px < width and 0 <= py < height):
            continue
        if skeleton_facing.get(name, 1.0) < FACING_THRESHOLD.get(name, -2.0):
            continue
        samples = canvas[py * s:(py + 1) * s, px * s:(px + 1) * s, 1]
        if _OWN_SEGMENTS[k][samples].all():
            out[k] = (py, px)
    return out


#: The framing the background is drawn for when the camera zooms with the person (``render_person(camera=True)``):
#: the person's height and top, in image heights (the middle of articulation.FRAMINGS["whole"]).
CAMERA_HEIGHT, CAMERA_TOP = 0.86, 0.05


def camera_background(background: Background, pose: Articulation, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` float32: ``background`` as a camera framing ``pose`` sees it - drawn for the reference framing
    (:data:`CAMERA_HEIGHT`, :data:`CAMERA_TOP`) and zoomed about the person's centre column by the reference height
    over ``pose.height`` (the border repeated), so that the wall zooms and shifts with the person as it does when a
    camera changes its framing (``draw_background`` alone keeps the wall still whatever the framing)."""
    height, width = size
    factor = CAMERA_HEIGHT / pose.height
    centre = pose.centre * width
    to_reference = np.array([[factor, 0.0, centre * (1.0 - factor)],
                             [0.0, factor, (CAMERA_TOP - pose.top * factor) * height]], np.float32)
    return cv2.warpAffine(draw_background(background, size), to_reference, (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def render_person(identity: Identity, pose: Articulation, background: Background, size: tuple[int, int],
                  supersample: int = 2, camera: bool = False) -> Rendering:
    """Render ``identity`` in ``pose`` over ``background`` at ``size`` = (H, W); ``camera``: the background zooms
    with the framing (:func:`camera_background`)."""
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    height, width = size
    skeleton = build_skeleton(pose)
    body = build_body(identity, skeleton, Projection.of(pose, size), supersample)
    canvas = rasterise(body, identity, (height * supersample, width * supersample))
    index, colours = _colours(body, identity, canvas)
    premultiplied = np.zeros((height * supersample * width * supersample, 3), np.float32)
    premultiplied[index] = colours
    alpha = (canvas[..., 1] > 0).astype(np.float32)
    premultiplied = premultiplied.reshape(height * supersample, width * supersample, 3)
    if supersample > 1:
        premultiplied = cv2.resize(premultiplied, (width, height), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
    wall = camera_background(background, pose, size) if camera else draw_background(background, size)
    image = wall * (1.0 - alpha[..., None]) + premultiplied
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    layout = majority_labels(canvas[..., 0], supersample)
    keypoints = keypoints_of(body, skeleton.facing, canvas, supersample, size)
    return Rendering(image, layout, keypoints)
