"""SynthHumans: procedural 2D people with exact layouts, keypoints, invisible-part masks and edit pairs,
written in the DeepFashion/Market on-disk formats (docs/synthhumans.md).

Modules: ``people`` (identities, edits), ``articulation`` (skeleton, joint limits, views, framing), ``shapes``
(primitives with labels and depth), ``render`` (rasteriser, backgrounds), ``truth`` (invisible masks,
edits CSV), ``writer`` (the dataset on disk, contact sheet).
"""

from recapture.data.synthetic.people import ClothingEdit, FigureEdit, Identity, sample_identity
from recapture.data.synthetic.articulation import Articulation, sample_articulation
from recapture.data.synthetic.render import Background, Rendering, render_person, sample_background
from recapture.data.synthetic.truth import EditRecord, invisible_mask, read_edits, write_edits
from recapture.data.synthetic.writer import (
    SynthConfig, SynthSummary, contact_sheet, generate, image_name, parse_size, sample_shot, split_spec, write_preview,
)

#: Seed of the SynthHumans people shown to users (demo, web editor): no bundled model trained on it
#: (their training sets use seed 0; the layout benchmarks use 12345).
SHOWCASE_SEED = 2026

__all__ = [
    "ClothingEdit", "FigureEdit", "Identity", "sample_identity", "Articulation", "sample_articulation", "contact_sheet",
    "parse_size", "write_preview", "Background", "Rendering", "render_person", "sample_background", "EditRecord",
    "invisible_mask", "read_edits", "write_edits", "SynthConfig", "SynthSummary", "generate", "image_name",
    "sample_shot", "split_spec", "SHOWCASE_SEED",
]
