"""Work that depends on the source only, done once per video (``recapture video``).

A video re-poses one source person into many target poses. The photo-resolution window of the source is
cut once (:func:`recapture.pipelines.framing.source_window`, passed to every frame); the correspondence
appearance network's source encoder (its input: the source image, layout and pose at the internal size) is
run once through :func:`reusing_source_encoder`. What stays per frame inside the network's call
(``models/correspondence.py``: the source layout's majority one-hot at the internal size, the source image's
area reduction) is recomputed each frame; the results do not change.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class ReusedEncoder(torch.nn.Module):
    """A module run once per distinct input: the correspondence network's source encoder sees the same source
    in every frame of a video, so its feature pyramid is computed once and reused. The input is compared in
    full (``torch.equal``), so a different input always runs the wrapped module: results are exactly those
    without reuse. ``calls``: how often the wrapped module ran."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self._key: torch.Tensor | None = None
        self._value: object = None

    def forward(self, features: torch.Tensor) -> object:
        key = self._key
        if key is None or key.shape != features.shape or not torch.equal(key, features):
            self._key, self._value = features, self.inner(features)
            self.calls += 1
        return self._value


@contextmanager
def reusing_source_encoder(recapturer: object) -> Iterator[ReusedEncoder | None]:
    """Within the block the correspondence appearance network of ``recapturer`` computes its source features
    once per distinct source (yields the wrapper, whose ``calls`` counts the real runs); None and no change
    for any other model. Not thread-safe: the recapturer's network is swapped for the block's duration."""
    from recapture.models.correspondence import CorrespondenceGenerator

    network = getattr(getattr(recapturer, "generator", None), "appearance", None)
    if not isinstance(network, CorrespondenceGenerator):
        yield None
        return
    original = network.encoder
    reused = ReusedEncoder(original)
    network.encoder = reused
    try:
        yield reused
    finally:
        network.encoder = original
