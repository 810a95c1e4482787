"""SynthHumans backgrounds: plain or soft-gradient studio walls (DeepFashion-like) and cluttered street
scenes (Market-like). A :class:`Background` is sampled once per image and drawn at any size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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
