"""``recapture edit``: one source portrait, a target pose and layout edits -> an image file.

Two routes:
* the source's pose and layout are given (``--source-pose``, ``--source-layout``: a dataset image):
  the portrait is recaptured in the model frame and the generated image is written;
* otherwise the source is a photo in the wild: pose estimation, segmentation, approximate parsing (or
  ``--source-layout`` as a LIP PNG), generation, inpainting and compositing at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from recapture.body.edits import LayoutEdits
from recapture.pipelines.photo import dataset_source, recapture_photo
from recapture.pipelines.poses import target_keypoints
from recapture.pipelines.recapture import Recapturer, Result

#: Factors of the ``--thinner GROUP`` / ``--fatter GROUP`` shortcuts.
THINNER, FATTER = 0.8, 1.25


@dataclass(frozen=True)
class EditRequest:
    """Everything ``recapture edit`` takes."""

    source: Path
    pose: str
    out: Path
    model: str = "synthhumans"
    pose_frame: tuple[int, int] | None = None
    source_pose: str | None = None
    source_layout: Path | None = None
    thinner: tuple[str, ...] = ()
    fatter: tuple[str, ...] = ()
    scale: tuple[str, ...] = ()
    clothing: tuple[str, ...] = ()
    layout_out: Path | None = None
    attention: tuple[int, int] | None = None
    attention_out: Path | None = None


@dataclass(frozen=True)
class EditOutcome:
    """What was written."""

    image: Path
    written: tuple[Path, ...] = field(default_factory=tuple)
    result: Result | None = None


def parse_frame(text: str | None) -> tuple[int, int] | None:
    """``"256x176"`` -> (256, 176)."""
    if not text:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"frame must look like HxW (e.g. 256x176), got {text!r}") from None
    return height, width


def layout_edits(request: EditRequest) -> LayoutEdits:
    """Figure and clothing edits of a request (shortcuts expanded)."""
    figure = [f"{g}={THINNER}" for g in request.thinner] + [f"{g}={FATTER}" for g in request.fatter]
    return LayoutEdits.parse(figure=figure + list(request.scale), clothing=list(request.clothing))


def run_edit(request: EditRequest, recapturer: Recapturer | None = None) -> EditOutcome:
    """Carry out an edit request; raises ValueError (with the reason) on bad input."""
    recapturer = recapturer or Recapturer.from_pretrained(request.model)
    edits = layout_edits(request)
    target = target_keypoints(request.pose, recapturer.image_size, request.pose_frame)
    request.out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if request.source_pose is not None:
        source = dataset_source(recapturer, request.source, request.source_pose, request.source_layout)
        result = recapturer(source.image, target, source_pose=source.keypoints, source_layout=source.layout,
                            edits=edits)
        Image.fromarray(result.image).save(request.out)
    else:
        found = recapture_photo(recapturer, request.source, target, edits=edits, layout_path=request.source_layout)
        result = found.result
        Image.fromarray(found.composite).save(request.out)
    written.append(request.out)
    if request.layout_out is not None:
        Image.fromarray(recapturer.label_set.colorize(result.target_layout)).save(request.layout_out)
        written.append(request.layout_out)
    if request.attention is not None:
        attention = recapturer.attention(result, request.attention)
        path = request.attention_out or request.out.with_name(request.out.stem + "_attention.png")
        Image.fromarray(attention.overlay).save(path)
        written.append(path)
    return EditOutcome(image=request.out, written=tuple(written), result=result)


def attention_pixel(text: str | None) -> tuple[int, int] | None:
    """``"40,20"`` -> (40, 20) (y, x)."""
    if not text:
        return None
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--attention must be Y,X (model-frame pixel), got {text!r}") from None
    return y, x

