"""SynthHumans identities: the appearance of one person, fixed across every render of that person.

An :class:`Identity` holds skin tone, hair, an outfit (garments by category, each with a structured
texture), shoes, accessories and a figure (width factors per part group). Identities are sampled from
``(seed, person)`` alone, so any worker can rebuild any person. The two ground-truth edits (figure
and clothing) are pure functions ``Identity -> Identity``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from recapture.body.edits import CLOTHING_CHANGE_GARMENTS

Colour = tuple[int, int, int]

TEXTURE_KINDS: tuple[str, ...] = ("plain", "stripes", "checks", "dots", "patch")
TOPS: tuple[str, ...] = ("t_shirt", "long_sleeves", "dress")
BOTTOMS: tuple[str, ...] = ("pants", "shorts", "skirt")
PART_GROUPS: tuple[str, ...] = ("arms", "legs", "torso")
HAIR_LENGTHS: tuple[str, ...] = ("short", "medium", "long")

#: Clothing edits and the garments they change (``garment_from -> garment_to``; ``none`` = absent): the
#: same table the layout edits use, so a rendered truth and its layout edit always name one change.
CLOTHING_CHANGES: dict[str, tuple[str, str]] = CLOTHING_CHANGE_GARMENTS

_SKIN_TONES: tuple[Colour, ...] = (
    (255, 224, 196), (241, 194, 167), (224, 172, 138), (198, 134, 96), (161, 102, 68), (118, 74, 48), (84, 54, 38),
)
_HAIR_COLOURS: tuple[Colour, ...] = (
    (20, 16, 14), (48, 32, 24), (92, 60, 36), (150, 110, 62), (214, 180, 120), (150, 60, 30), (160, 160, 160),
)


@dataclass(frozen=True)
class Texture:
    """A structured garment texture in garment-local body units (1 = body height).

    ``kind`` is one of :data:`TEXTURE_KINDS`; ``colour`` is the base and ``accent`` the pattern colour;
    ``period`` the pattern period, ``angle`` the stripe angle (radians), ``duty`` the accent fraction.
    """

    kind: str
    colour: Colour
    accent: Colour
    period: float
    angle: float
    duty: float


@dataclass(frozen=True)
class Figure:
    """Width factors per part group (1.0 = average; < 1 thinner, > 1 fatter)."""

    arms: float
    legs: float
    torso: float

    def scaled(self, part_group: str, factor: float) -> "Figure":
        """This figure with ``part_group``'s width multiplied by ``factor``."""
        if part_group not in PART_GROUPS:
            raise ValueError(f"unknown part group {part_group!r}; valid: {', '.join(PART_GROUPS)}")
        if not factor > 0:
            raise ValueError(f"figure factor must be positive, got {factor}")
        return dataclasses.replace(self, **{part_group: getattr(self, part_group) * factor})


@dataclass(frozen=True)
class Outfit:
    """Garments by category.

    ``top``: t_shirt | long_sleeves | dress; ``bottom``: pants | shorts | skirt (ignored under a dress);
    ``coat``: a coat over the top. Lengths are fractions of the thigh (skirt, coat) below the hips.
    ``coat_texture`` and the lengths are always sampled so that the clothing edits can add garments.
    """

    top: str
    bottom: str
    coat: bool
    top_texture: Texture
    bottom_texture: Texture
    coat_texture: Texture
    skirt_length: float
    coat_length: float
    socks: Colour | None
    gloves: Colour | None


@dataclass(frozen=True)
class Identity:
    """Everything about a person that stays fixed across poses."""

    person: int
    skin: Colour
    hair: Colour
    hair_length: str
    hairline: float
    outfit: Outfit
    shoes: Colour
    hat: Colour | None
    sunglasses: bool
    figure: Figure


def identity_rng(seed: int, person: int) -> np.random.Generator:
    """The generator of person ``person``'s identity (independent of poses and workers)."""
    return np.random.default_rng([int(seed), int(person), 0x1D])


def _jitter(rng: np.random.Generator, colour: Colour, amount: float) -> Colour:
    values = np.clip(np.asarray(colour, float) + rng.normal(0.0, amount, 3), 0, 255)
    return tuple(int(v) for v in np.rint(values))  # type: ignore[return-value]


def _garment_colour(rng: np.random.Generator) -> Colour:
    """A garment colour: mostly muted HSV, sometimes near black/white/grey."""
    if rng.random() < 0.3:
        grey = float(rng.choice([25.0, 60.0, 130.0, 200.0, 240.0]))
        return _jitter(rng, (int(grey),) * 3, 6.0)
    hue = rng.random()
    saturation = rng.uniform(0.2, 0.85)
    value = rng.uniform(0.3, 0.95)
    rgb = np.clip(np.abs(((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0) - 3.0) - 1.0, 0.0, 1.0)
    colour = value * (1.0 - saturation + saturation * rgb) * 255.0
    return tuple(int(v) for v in np.rint(colour))  # type: ignore[return-value]


def _contrast(rng: np.random.Generator, base: Colour) -> Colour:
    """An accent colour that differs visibly from ``base``."""
    for _ in range(8):
        accent = _garment_colour(rng)
        if np.abs(np.subtract(accent, base)).sum() > 120:
            return accent
    return tuple(255 - c for c in base)  # type: ignore[return-value]


def sample_texture(rng: np.random.Generator, plain_weight: float = 0.35) -> Texture:
    """A random texture; ``plain_weight`` is the probability of a plain one."""
    rest = (1.0 - plain_weight) / (len(TEXTURE_KINDS) - 1)
    kind = str(rng.choice(TEXTURE_KINDS, p=[plain_weight] + [rest] * (len(TEXTURE_KINDS) - 1)))
    colour = _garment_colour(rng)
    return Texture(kind=kind, colour=colour, accent=_contrast(rng, colour), period=float(rng.uniform(0.018, 0.05)),
                   angle=float(rng.uniform(0.0, np.pi)), duty=float(rng.uniform(0.3, 0.55)))


def sample_figure(rng: np.random.Generator) -> Figure:
    """A body figure from thin (about 0.75) to fat (about 1.3), with per-group variation."""
    build = rng.uniform(-1.0, 1.0)
    base = 1.0 + (0.3 if build > 0 else 0.22) * build
    arms, legs, torso = np.clip(base + rng.normal(0.0, 0.05, 3), 0.7, 1.4)
    return Figure(arms=float(arms), legs=float(legs), torso=float(torso))


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Garments: a top (or a dress), a bottom, an optional coat, optional socks and gloves."""
    top = str(rng.choice(TOPS, p=[0.45, 0.35, 0.2]))
    bottom = str(rng.choice(BOTTOMS, p=[0.5, 0.25, 0.25]))
    coat = bool(rng.random() < 0.2)
    top_texture = sample_texture(rng)
    bottom_texture = sample_texture(rng, plain_weight=0.6)
    coat_texture = sample_texture(rng, plain_weight=0.7)
    bare_legs = top == "dress" or bottom in ("shorts", "skirt")
    socks = _garment_colour(rng) if bare_legs and rng.random() < 0.3 else None
    gloves = _garment_colour(rng) if rng.random() < 0.04 else None
    return Outfit(top=top, bottom=bottom, coat=coat, top_texture=top_texture, bottom_texture=bottom_texture,
                  coat_texture=coat_texture, skirt_length=float(rng.uniform(0.35, 1.1)),
                  coat_length=float(rng.uniform(0.0, 0.8)), socks=socks, gloves=gloves)


def sample_identity(seed: int, person: int) -> Identity:
    """The identity of ``person`` in the dataset generated with ``seed`` (deterministic)."""
    rng = identity_rng(seed, person)
    skin = _jitter(rng, _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], 6.0)
    hair = _jitter(rng, _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))], 8.0)
    hair_length = str(rng.choice(HAIR_LENGTHS, p=[0.4, 0.3, 0.3]))
    outfit = sample_outfit(rng)
    shoes = _garment_colour(rng)
    hat = _garment_colour(rng) if rng.random() < 0.12 else None
    sunglasses = bool(rng.random() < 0.12)
    return Identity(person=int(person), skin=skin, hair=hair, hair_length=hair_length,
                    hairline=float(rng.uniform(0.25, 0.5)), outfit=outfit, shoes=shoes, hat=hat,
                    sunglasses=sunglasses, figure=sample_figure(rng))


@dataclass(frozen=True)
class FigureEdit:
    """Multiply the width of ``part_group`` (arms | legs | torso) by ``factor``."""

    part_group: str
    factor: float

    def apply(self, identity: Identity) -> Identity:
        return dataclasses.replace(identity, figure=identity.figure.scaled(self.part_group, self.factor))


@dataclass(frozen=True)
class ClothingEdit:
    """Change one garment category (a key of :data:`CLOTHING_CHANGES`)."""

    change: str

    @property
    def garment_from(self) -> str:
        return CLOTHING_CHANGES[self.change][0]

    @property
    def garment_to(self) -> str:
        return CLOTHING_CHANGES[self.change][1]

    def applicable(self, identity: Identity) -> bool:
        """Whether ``identity`` wears ``garment_from`` so that this edit changes something visible."""
        outfit = identity.outfit
        if self.change == "add_coat":
            return not outfit.coat
        if self.change == "remove_coat":
            return outfit.coat
        if self.garment_from in BOTTOMS:
            return outfit.top != "dress" and outfit.bottom == self.garment_from
        return not outfit.coat and outfit.top == self.garment_from

    def apply(self, identity: Identity) -> Identity:
        """The same person wearing the changed garment (textures and colours kept)."""
        if self.change not in CLOTHING_CHANGES:
            raise ValueError(f"unknown clothing change {self.change!r}; valid: {', '.join(CLOTHING_CHANGES)}")
        if not self.applicable(identity):
            raise ValueError(f"clothing change {self.change!r} does not apply to person {identity.person}")
        outfit = identity.outfit
        if self.change in ("add_coat", "remove_coat"):
            outfit = dataclasses.replace(outfit, coat=self.change == "add_coat")
        elif self.garment_from in BOTTOMS:
            outfit = dataclasses.replace(outfit, bottom=self.garment_to)
        else:
            outfit = dataclasses.replace(outfit, top=self.garment_to)
        return dataclasses.replace(identity, outfit=outfit)


FIGURE_FACTORS: tuple[float, ...] = (0.75, 0.85, 1.2, 1.35)


def sample_figure_edit(rng: np.random.Generator) -> FigureEdit:
    """A figure edit: a part group and a factor from :data:`FIGURE_FACTORS`."""
    return FigureEdit(part_group=str(rng.choice(PART_GROUPS)), factor=float(rng.choice(FIGURE_FACTORS)))


def sample_clothing_edit(rng: np.random.Generator, identity: Identity) -> ClothingEdit:
    """A clothing edit that applies to ``identity`` (the forward changes are preferred)."""
    forward = [c for c in list(CLOTHING_CHANGES)[:4] if ClothingEdit(c).applicable(identity)]
    options = forward or [c for c in CLOTHING_CHANGES if ClothingEdit(c).applicable(identity)]
    return ClothingEdit(str(rng.choice(options)))
