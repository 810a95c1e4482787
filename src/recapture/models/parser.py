"""The learned LIP-20 human parser: frozen Inception-v3 stages + a light head (pose and person mask as extra inputs).

The parser sees a person crop of :data:`INPUT_SIZE` (320x208, the photo's aspect kept, see
:func:`parser_crop`). The backbone (``models/inception.py``) gives ``conv_4`` (192 ch), ``mixed_2``
(288 ch) and ``mixed_7`` (768 ch). Inception pads nothing ("valid"), so the stage maps do not span the
input evenly: the centre of cell ``i`` of a stage lies at input pixel ``stride * i + offset``
(:data:`STAGE_GRIDS`, derived from the layer list: conv_4 ``4i + 9``, mixed_2 ``8i + 13``, mixed_7
``16i + 21``). :func:`align` resamples any map onto another grid with these offsets, and the head
predicts on the conv_4 grid; :func:`upsample_logits` brings its logits back to input pixels.

A head may also fine-tune the last Inception stages (``ParserHeadConfig.tuned``, e.g. ``mixed_6,mixed_7``): it
then holds trainable copies of them (:class:`TunedStages`, saved with the head; the shared backbone is never
changed) and reads the stage before them (``mixed_5``) instead of ``mixed_7`` (:func:`input_stages`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import LIP20
from recapture.config import ConfigError
from recapture.models.parser_crop import INPUT_SIZE, parser_crop  # noqa: F401 - parser_crop re-exported

STAGES: tuple[str, ...] = ("conv_4", "mixed_2", "mixed_7")
#: Stages a feature cache keeps: :data:`STAGES` and ``mixed_5``, the input of a head that tunes mixed_6 and mixed_7.
CACHED_STAGES: tuple[str, ...] = ("conv_4", "mixed_2", "mixed_5", "mixed_7")
STAGE_CHANNELS: dict[str, int] = {"conv_4": 192, "mixed_2": 288, "mixed_5": 768, "mixed_6": 768, "mixed_7": 768}
#: ``(stride, offset)``: cell ``i`` of the stage is centred on input pixel ``stride * i + offset``.
STAGE_GRIDS: dict[str, tuple[int, int]] = {"input": (1, 0), "conv_4": (4, 9), "mixed_2": (8, 13), "mixed_7": (16, 21)}
#: Gaussian width of the pose heatmaps, in input pixels.
HEATMAP_SIGMA = 10.0


def grid_size(stage: str, size: tuple[int, int] = INPUT_SIZE) -> tuple[int, int]:
    """``(h, w)`` of a stage's map for an input of ``size`` (e.g. conv_4 of 320x208 -> 76x48)."""
    if stage == "input":
        return size
    if stage == "conv_4":  # conv (3x3 s2), conv_1 (3x3), pool0 (3x3 s2), conv_4 (3x3), all unpadded
        return tuple(((s - 3) // 2 + 1 - 2 - 3) // 2 + 1 - 2 for s in size)  # type: ignore[return-value]
    if stage == "mixed_2":
        return tuple((c - 3) // 2 + 1 for c in grid_size("conv_4", size))  # type: ignore[return-value]
    return tuple((c - 3) // 2 + 1 for c in grid_size("mixed_2", size))  # type: ignore[return-value]


def _coordinates(count: int, target: tuple[int, int], source: tuple[int, int], source_count: int) -> Tensor:
    """Normalised (align_corners=True) source coordinates of ``count`` target cells."""
    pixels = target[0] * torch.arange(count, dtype=torch.float32) + target[1]
    index = (pixels - source[1]) / source[0]
    return 2.0 * index / max(source_count - 1, 1) - 1.0


def align(feature: Tensor, source: str, target: str, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """Bilinearly resample ``(N, C, h, w)`` ``feature`` on the ``source`` grid onto the ``target`` grid
    (both from :data:`STAGE_GRIDS`, for an input of ``size``); beyond the source's reach, its border."""
    out_h, out_w = grid_size(target, size)
    ys = _coordinates(out_h, STAGE_GRIDS[target], STAGE_GRIDS[source], feature.shape[-2]).to(feature.device)
    xs = _coordinates(out_w, STAGE_GRIDS[target], STAGE_GRIDS[source], feature.shape[-1]).to(feature.device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(feature.shape[0], -1, -1, -1)
    return F.grid_sample(feature, grid.to(feature.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def upsample_logits(logits: Tensor, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """``(N, 20, h, w)`` logits on the conv_4 grid -> ``(N, 20, H, W)`` at input pixels."""
    return align(logits, "conv_4", "input", size)


def pose_heatmaps(keypoints: Tensor, stage: str, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """``(N, 18, 2)`` y/x input-pixel keypoints (-1 missing) -> ``(N, 18, h, w)`` Gaussians on a stage grid."""
    stride, offset = STAGE_GRIDS[stage]
    height, width = grid_size(stage, size)
    ys = (stride * torch.arange(height, dtype=torch.float32) + offset).to(keypoints.device).view(1, 1, -1, 1)
    xs = (stride * torch.arange(width, dtype=torch.float32) + offset).to(keypoints.device).view(1, 1, 1, -1)
    present = ((keypoints[..., 0] != -1) & (keypoints[..., 1] != -1)).float()[..., None, None]
    d2 = (ys - keypoints[..., 0, None, None]) ** 2 + (xs - keypoints[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2.0 * HEATMAP_SIGMA ** 2)) * present


def _block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


@dataclass(frozen=True)
class ParserHeadConfig:
    """Widths of the head: deep (mixed_7), middle (mixed_2), shallow (conv_4) and the fine decoder."""

    deep: int = 96
    middle: int = 96
    shallow: int = 48
    fine: int = 64
    num_parts: int = LIP20.num_parts
    context: int = 0  # hidden width of the global-context branch (0: none, the first shipped head)
    bands: int = 4  # horizontal bands of the crop pooled separately by the context branch
    tuned: str = ""  # comma-separated last Inception stages fine-tuned with the head ("": the backbone frozen)

    def __post_init__(self) -> None:
        tuned_names(self)  # a ConfigError naming head.tuned when it is not a run of stages ending at mixed_7


def tuned_names(config: ParserHeadConfig) -> tuple[str, ...]:
    """The Inception stages a head fine-tunes, in order, ending at mixed_7 (``()``: none)."""
    from recapture.models.inception import STAGE_NAMES

    names = tuple(name.strip() for name in config.tuned.split(",") if name.strip())
    if not names:
        return ()
    end = STAGE_NAMES.index("mixed_7") + 1
    if names[0] not in STAGE_NAMES[:end] or names != STAGE_NAMES[STAGE_NAMES.index(names[0]):end]:
        raise ConfigError(f"head.tuned: {config.tuned!r} is not a run of Inception stages ending at mixed_7")
    return names


def input_stages(config: ParserHeadConfig) -> tuple[str, ...]:
    """The backbone stages a head reads: conv_4, mixed_2 and mixed_7, or the stage before its tuned ones."""
    from recapture.models.inception import STAGE_NAMES

    names = tuned_names(config)
    return STAGES if not names else ("conv_4", "mixed_2", STAGE_NAMES[STAGE_NAMES.index(names[0]) - 1])


class TunedStages(nn.Module):
    """Trainable copies of the last Inception stages (``names``; TorchScript modules copied from the shared,
    frozen backbone). Their convolution weights and BatchNorm offsets (``beta``) train; the BatchNorm statistics
    (``mean``, ``var``) stay frozen (the stages always normalise with them).

    forward: ``(N, 768, h, w)`` map of the stage before ``names`` -> ``(N, 768, h, w)`` mixed_7.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        from recapture.models.inception import load_inception

        super().__init__()
        layers = dict(load_inception().module.net.layers.named_children())
        self.stages = nn.ModuleList(copy.deepcopy(layers[name]) for name in names)
        for name, parameter in self.stages.named_parameters():
            parameter.requires_grad_(not name.endswith((".mean", ".var")))

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


class ParserHead(nn.Module):
    """Stage maps + person mask + pose -> LIP-20 logits on the conv_4 grid.

    With ``config.context`` > 0, a global-context vector (:meth:`pooled_context`) is added to every cell
    of the middle (mixed_2-grid) features. With ``config.tuned``, ``stages`` holds the stage before the tuned
    ones (:func:`input_stages`) and :attr:`tail` computes mixed_7 from it; given mixed_7 instead (the ONNX export
    runs the tail with the backbone), the head uses it as it is.

    forward: ``stages`` ``{conv_4: (N,192,..), mixed_2: (N,288,..), mixed_7: (N,768,..)}`` of a
    :data:`INPUT_SIZE` input, ``mask`` ``(N, 1, H, W)`` person probability at input pixels, ``keypoints``
    ``(N, 18, 2)`` y/x input pixels (-1 missing) -> ``(N, 20, h4, w4)`` logits.
    """

    def __init__(self, config: ParserHeadConfig = ParserHeadConfig()) -> None:
        super().__init__()
        extra = 1 + NUM_KEYPOINTS
        c = config
        self.config = config
        self.deep = nn.Sequential(_block(STAGE_CHANNELS["mixed_7"], c.deep, 1), _block(c.deep, c.deep, 3))
        self.middle_in = _block(STAGE_CHANNELS["mixed_2"], c.middle, 1)
        self.middle = _block(c.deep + c.middle + extra, c.middle, 3)
        self.shallow_in = _block(STAGE_CHANNELS["conv_4"], c.shallow, 1)
        self.fine = nn.Sequential(_block(c.middle + c.shallow + extra, c.fine, 3), _block(c.fine, c.fine, 3),
                                  nn.Conv2d(c.fine, c.num_parts, 1))
        if c.context > 0:
            self.context = nn.Sequential(nn.Linear(c.deep * (1 + c.bands), c.context), nn.ReLU(inplace=True),
                                         nn.Linear(c.context, c.middle))
            nn.init.zeros_(self.context[2].weight)  # starts as a no-op: a head without context can be extended
            nn.init.zeros_(self.context[2].bias)
        names = tuned_names(config)
        self.tail = TunedStages(names) if names else None
        self.tail_input = input_stages(config)[-1]

    def pooled_context(self, deep: Tensor, mask: Tensor) -> Tensor:
        """``(N, deep, h7, w7)`` deep features and ``(N, 1, H, W)`` person mask -> ``(N, middle)``: the
        features averaged over the person (mask-weighted), over the whole person and over each of
        ``bands`` horizontal bands of the crop, through a small MLP (one garment vs. top + skirt)."""
        weight = align(mask.float(), "input", "mixed_7", (mask.shape[-2], mask.shape[-1])) + 1e-3
        rows = torch.tensor_split(torch.arange(deep.shape[-2], device=deep.device), self.config.bands)
        regions = [torch.arange(deep.shape[-2], device=deep.device), *rows]
        pooled = [(deep[:, :, r] * weight[:, :, r]).sum((2, 3)) / weight[:, :, r].sum((2, 3)) for r in regions]
        return self.context(torch.cat(pooled, 1))

    def forward(self, stages: dict[str, Tensor], mask: Tensor, keypoints: Tensor) -> Tensor:
        size = (mask.shape[-2], mask.shape[-1])
        if self.tail is not None and self.tail_input in stages:
            stages = {**stages, "mixed_7": self.tail(stages[self.tail_input].float())}
        deep7 = self.deep(stages["mixed_7"].float())
        deep = align(deep7, "mixed_7", "mixed_2", size)
        extra = torch.cat([align(mask.float(), "input", "mixed_2", size), pose_heatmaps(keypoints, "mixed_2", size)], 1)
        middle = self.middle(torch.cat([deep, self.middle_in(stages["mixed_2"].float()), extra], 1))
        if self.config.context > 0:
            middle = middle + self.pooled_context(deep7, mask)[:, :, None, None]
        extra = torch.cat([align(mask.float(), "input", "conv_4", size), pose_heatmaps(keypoints, "conv_4", size)], 1)
        middle = align(middle, "mixed_2", "conv_4", size)
        return self.fine(torch.cat([middle, self.shallow_in(stages["conv_4"].float()), extra], 1))


def image_tensor(crop_rgb: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crop_rgb)).permute(2, 0, 1)[None].float() / 255.0
