"""Reading scored images (through the project's one decoder, which refuses NaN pixels of float TIFFs
naming the file), and one panel cut out of side-by-side strips.

Published outputs are often strips (source | target | generated, PATN's 5 panels, ...). ``--panel K
--panels N [--panel-gap G]`` scores panel K (1-based; -1 is the last) of a strip of N equal panels
separated by G-pixel gaps (default 0): ``width = N * panel_width + (N - 1) * G``, so ``width - (N - 1) * G``
must be divisible by N, or the file is refused with a message naming it. The panel is then resized to
the real image's size like any generated image (PIL bilinear).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from recapture.data.errors import FormatError
from recapture.data.formats import read_image


@dataclass(frozen=True)
class Panels:
    """Panel ``panel`` (1-based, negative counts from the right) of ``count`` panels, ``gap`` px apart."""

    panel: int = 1
    count: int = 1
    gap: int = 0

    def __post_init__(self) -> None:
        if self.count < 1 or self.gap < 0:
            raise ValueError(f"--panels must be >= 1 and --panel-gap >= 0, got {self.count} and {self.gap}")
        if self.panel == 0 or abs(self.panel) > self.count:
            raise ValueError(f"--panel must be 1..{self.count} or -1..-{self.count}, got {self.panel}")

    @property
    def whole(self) -> bool:
        return self.count == 1

    def describe(self) -> str:
        if self.whole:
            return "whole generated image"
        return (f"panel {self.panel} of {self.count} equal panels with {self.gap}-px gaps "
                "(width = N * panel + (N - 1) * gap)")

    def bounds(self, width: int, path: Path) -> tuple[int, int]:
        """``(x0, x1)`` of the panel in a strip ``width`` px wide; FormatError naming ``path`` if it does not fit."""
        content = width - (self.count - 1) * self.gap
        if content <= 0 or content % self.count != 0:
            raise FormatError(path, f"width {width} is not {self.count} equal panels with {self.gap}-px gaps "
                                    f"(width - {self.count - 1} * gap = {content} is not divisible by {self.count}); "
                                    "check --panels / --panel-gap")
        panel_width = content // self.count
        index = self.panel - 1 if self.panel > 0 else self.count + self.panel
        x0 = index * (panel_width + self.gap)
        return x0, x0 + panel_width


def fit_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (H, W) with PIL bilinear if it differs."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def read_generated(path: Path, size: tuple[int, int], panels: Panels = Panels()) -> np.ndarray:
    """A generated image as ``(H, W, 3)`` uint8 of the real image's ``size``: the chosen panel of a strip,
    resized bilinearly (PIL) if needed."""
    image = read_image(path)
    if not panels.whole:
        x0, x1 = panels.bounds(image.shape[1], path)
        image = image[:, x0:x1]
    return fit_to(image, size)
