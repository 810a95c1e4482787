"""Typed, frozen configuration: dataclasses for data, model, loss and training; YAML presets; dotted
overrides such as ``model.lgr_steps=2``. Unknown keys and wrongly typed values are errors.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from recapture.fileio import atomic_write_text, load_yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    """Where the paired dataset lives and how it is read."""

    manifest: str = ""
    flip: bool = True
    num_workers: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the geometric and appearance networks and the discriminators (``recapture.models``).
    Defaults are the DeepFashion preset (``configs/deepfashion.yaml``).

    A *level* ``k`` is a feature map at ``1 / 2**k`` of the network size: the paper's layer ``l`` is
    level ``l - 1`` (DeepFashion: SAT at paper layer l=3 -> level 2, 64x44 for 256x176; LGR at
    r=5 -> level 4). ``image_size`` is the *output* size (what the user gets, what manifests are checked
    against); ``internal_size`` (default: the same) is what the networks run at and must be divisible
    by ``2**num_down``. Inputs are brought down to it and the image and layout logits back up.
    """

    label_set: str = "lip20"  # part label set (recapture.body.parts): lip20 | market7 | adgan8
    image_size: tuple[int, int] = (256, 176)  # (H, W) output size: images in and out, manifests
    internal_size: tuple[int, int] | None = None  # (H, W) the networks run at; None = image_size
    geometric_prior: bool = False  # geometric net predicts residual logits over the keypoint part warp
    layout_flip_average: bool = False  # inference: average Ŝ_B with that of the mirrored pair (L/R swapped)
    layout_min_area: int = 0  # inference: a label covering fewer Ŝ_B pixels gives way to the next best
    layout_person_confidence: float = 0.0  # inference: a Ŝ_B pixel is person only where 1 - P(background) exceeds
    # this (its part then the most likely part), for pose changes above layout_confident_above; 0 = the argmax
    layout_confident_above: float = 0.0  # pose change (retarget.pose_distance, torso lengths) beyond which it applies
    layout_torso_person: bool = False  # inference: Ŝ_B pixels inside the target's shoulders-hips quadrilateral are
    # person (background gives way to the most likely part there)
    reframe_zoom: float = 0.0  # inference: when the torso's length grows by more than this factor from the source
    # to the target keypoints (a zoom in), the source is re-framed to the target's scale first (models/reframe.py)
    appearance: str = "generative"  # generative (image painted at internal_size) | correspondence (flow +
    # visibility at internal_size, pixels copied from the full-size source: models/correspondence.py)
    base_channels: int = 64  # appearance encoder/decoder width at level 0 (doubles per level)
    max_channels: int = 256  # width cap of every encoder/decoder level
    num_down: int = 4  # number of downsamplings (levels 0..num_down)
    num_blocks: int = 3  # residual blocks at the bottleneck (geometric and appearance nets)
    decoder_blocks: int = 1  # residual blocks per appearance decoder level (levels >= 1)
    layout_channels: int = 32  # layout encoder width at level 0 (target signals for the decoder)
    geometric_channels: int = 32  # geometric U-Net width at level 0
    norm: str = "instance"  # generator normalisation: instance | batch | none
    sat_enabled: bool = True  # semantic-aware attentive transfer in the decoder
    sat_level: int = 2  # decoder level where SAT runs (paper l - 1)
    sat_dim: int = 64  # width of the query/key mappings g and theta
    lgr_enabled: bool = True  # layout graph reasoning in the decoder
    lgr_level: int = 4  # decoder level where LGR runs (paper r - 1)
    lgr_dim: int = 64  # node feature width D
    lgr_steps: int = 2  # graph propagation steps n (0 = no propagation)
    spectral_norm: bool = True  # spectral norm on every conv/linear of generators and discriminators
    discriminator_channels: int = 32  # PatchGAN width of the first layer
    discriminator_layers: int = 3  # strided layers of each PatchGAN

    def __post_init__(self) -> None:
        if self.appearance not in ("generative", "correspondence"):
            raise ConfigError(f"model.appearance must be generative or correspondence, got {self.appearance!r}")
        if self.layout_min_area < 0:
            raise ConfigError(f"model.layout_min_area must be >= 0, got {self.layout_min_area}")
        if not 0.0 <= self.layout_person_confidence < 1.0 or self.layout_confident_above < 0:
            raise ConfigError(f"model.layout_person_confidence must be in [0, 1) and model.layout_confident_above >= 0,"
                              f" got {self.layout_person_confidence} / {self.layout_confident_above}")
        if self.reframe_zoom != 0.0 and self.reframe_zoom <= 1.0:
            raise ConfigError(f"model.reframe_zoom must be 0 (off) or > 1, got {self.reframe_zoom}")
        if self.internal_size is not None:
            if min(self.internal_size) < 1 or any(i > o for i, o in zip(self.internal_size, self.image_size)):
                raise ConfigError(f"model.internal_size {self.internal_size} must be positive and at most "
                                  f"model.image_size {self.image_size}")

    @property
    def output_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images the model takes and returns (``image_size``)."""
        return tuple(self.image_size)  # type: ignore[return-value]

    @property
    def network_size(self) -> tuple[int, int]:
        """``(H, W)`` the networks run at (``internal_size``, or the output size)."""
        return tuple(self.internal_size or self.image_size)  # type: ignore[return-value]


@dataclass(frozen=True)
class LossConfig:
    """Objective weights of paper eqs. (17)-(18) and variants (defaults: the DeepFashion preset).

    Generator: ``l1 * L^S_G + l2 * L^H_G + l3 * (L1 + perceptual_weight * Lp) + l4 * Ls``;
    discriminator: ``l1 * L^S_D + l2 * L^H_D``.
    """

    lambda_layout_adv: float = 1.0  # lambda_1: layout adversarial terms (D1)
    lambda_image_adv: float = 5.0  # lambda_2: image adversarial terms (D2 + D3)
    lambda_reconstruction: float = 2.0  # lambda_3: L1 + perceptual (10 for Market-1501)
    lambda_layout_ce: float = 50.0  # lambda_4: per-pixel cross entropy of the predicted layout
    perceptual_weight: float = 1.0  # weight of Lp inside the lambda_3 term (0 disables VGG19)
    gan_mode: str = "nonsaturating"  # nonsaturating | saturating (eq. 10 literally) | hinge | lsgan
    vgg_weights: str = ""  # VGG19 weights file (safetensors or torch state dict); "" = torch hub cache


#: Training stages: which networks a run trains (the others are frozen).
STAGES: tuple[str, ...] = ("geometric", "appearance", "joint")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a training run."""

    batch_size: int = 4
    steps: int = 1000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0
    ema_decay: float = 0.0
    log_every: int = 10
    image_every: int = 200
    save_every: int = 500
    keep_last: int = 3
    device: str = "auto"
    bf16: bool = True
    teacher_forcing: bool = True
    predicted_layout: float = 0.0  # stage appearance: chance per pair that it sees Ŝ_B, not the true layout
    stage: str = "joint"  # geometric (layout only, CE) | appearance (geometric frozen) | joint
    init_from: str = ""  # generator weights to start from: a run directory or a model file
    run_dir: str = ""  # "" = runs/<preset>-<timestamp>; an existing non-empty folder is refused
    threads: int = 0  # torch intra-op threads per process (0 = torch's default)
    max_seconds: float = 0.0  # stop (and save) once the run has trained this long (0 = no limit)

    def __post_init__(self) -> None:
        if self.max_seconds < 0:
            raise ConfigError(f"train.max_seconds must be >= 0 (0 = no limit), got {self.max_seconds}")
        if self.stage not in STAGES:
            raise ConfigError(f"train.stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if not 0.0 <= self.predicted_layout <= 1.0:
            raise ConfigError(f"train.predicted_layout must lie in [0, 1], got {self.predicted_layout}")
        for name in ("batch_size", "steps", "log_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("image_every", "save_every", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0 (0 = off/default), got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs; written next to its checkpoints."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _convert(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, prefix=key + ".")
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any number of X
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{key}: expected a list, got {value!r}")
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None) and value is None:
                return None
        return _convert(value, next(a for a in typing.get_args(annotation) if a is not type(None)), key)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; unknown keys raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
                          f"valid: {', '.join(prefix + n for n in sorted(names))}")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain-Python mapping (tuples as lists), suitable for YAML/JSON."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v
    return plain(config)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested mapping copy."""
    result = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = result
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {k} is not a section")
        try:
            node[keys[-1]] = load_yaml(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: invalid YAML value ({getattr(err, 'problem', None) or err})") from None
    return result


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                cls: type[T] = ExperimentConfig) -> T:  # type: ignore[assignment]
    """Read a YAML preset (or defaults when ``path`` is None), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = load_yaml(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{where}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = loaded or {}
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{err}") from None


def save_config(config: Any, path: str | Path) -> None:
    """Write a config as YAML."""
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
