"""``recapture edit``: one source portrait, a target pose and layout edits -> an image file.

Both routes run the real-photo stages (:func:`recapture.pipelines.photo.run_photo`) and write the same
scene at the input's size:
* the source's pose and layout are given (``--source-pose``, ``--source-layout``: a dataset image):
  detection, pose estimation, segmentation and parsing are skipped;
* otherwise the source is a photo in the wild: people detection, pose estimation, segmentation and
  parsing (``--parser``, or ``--source-layout`` as a LIP PNG), then framing, generation, inpainting and
  compositing at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from recapture.body.edits import LayoutEdits
from recapture.body.keypoints import missing_mask
from recapture.fileio import check_output_file
from recapture.pipelines.framing import FrameOptions
from recapture.pipelines.photo import PhotoModels, PhotoOptions, PhotoRequest, PhotoResult, run_photo
from recapture.pipelines.photo_io import output_format, write_photo
from recapture.pipelines.poses import PoseSourceError, load_pose
from recapture.pipelines.recapture import Recapturer, Result

#: Factors of the ``--thinner GROUP`` / ``--fatter GROUP`` shortcuts.
THINNER, FATTER = 0.8, 1.25


@dataclass(frozen=True)
class EditRequest:
    """Everything ``recapture edit`` takes."""

    source: Path
    pose: str
    out: Path
    model: str = "default"
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
    parser: str | None = None
    person: int = 0
    allow_invent: bool = False
    retarget: bool = True
    invented_mask: Path | None = None
    quality: int = 95
    verbose: bool = False
    overwrite: bool = False  # allow an output to replace an existing file or an input (the source photo)
    method: str = "model"  # "model" or "warp": the training-free keypoint part-affine warp of the source
    layout: str = "prior"  # a photo's Ŝ_B: "prior" (keypoint warp of its parsing), "network" or "auto" (PhotoOptions)


@dataclass(frozen=True)
class EditOutcome:
    """What was written."""

    image: Path
    written: tuple[Path, ...] = field(default_factory=tuple)
    result: Result | None = None
    photo: PhotoResult | None = None


def parse_frame(text: str | None) -> tuple[int, int] | None:
    """``"256x176"`` -> (256, 176)."""
    if not text:
        return None
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"frame must look like HxW (e.g. 256x176), got {text!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"frame must be at least 1x1 pixels, got {text!r}")
    return height, width


def layout_edits(request: EditRequest) -> LayoutEdits:
    """Figure and clothing edits of a request (shortcuts expanded)."""
    figure = [f"{g}={THINNER}" for g in request.thinner] + [f"{g}={FATTER}" for g in request.fatter]
    return LayoutEdits.parse(figure=figure + list(request.scale), clothing=list(request.clothing))


def check_outputs(request: EditRequest) -> None:
    """ValueError (one line) for an output path that is not an image type, in a missing folder or an input."""
    inputs = [request.source, *(p for p in (request.source_layout,) if p is not None)]
    for path in (request.out, request.invented_mask, request.layout_out, request.attention_out):
        if path is not None:
            output_format(path)
            check_output_file(path, overwrite=request.overwrite, inputs=inputs)


def run_edit(request: EditRequest, recapturer: Recapturer | None = None,
             layout_parser: object | None = None) -> EditOutcome:
    """Carry out an edit request; raises ValueError (with the reason) on bad input, having written nothing.
    ``layout_parser``: a parser object used when the request names none (e.g. the ONNX parser)."""
    check_outputs(request)
    recapturer = recapturer or Recapturer.from_pretrained(request.model)
    edits = layout_edits(request)
    target = load_pose(request.pose, request.pose_frame)
    if missing_mask(target.keypoints).all():
        raise PoseSourceError(f"pose {target.source} has no joint")
    source_pose = source_layout = None
    if request.source_pose is not None:
        from recapture.data.formats import read_layout
        from recapture.pipelines.photo_io import read_photo

        if request.source_layout is None:
            raise ValueError("--source-pose needs --source-layout too (or give neither for a photo in the wild)")
        image = read_photo(request.source)
        source_pose = load_pose(request.source_pose, frame=image.pixels.shape[:2]).keypoints
        source_layout = read_layout(request.source_layout, recapturer.label_set.num_parts)
        source: object = image
        parser: object | None = None
    else:
        source = request.source
        parser = request.source_layout if request.source_layout is not None else request.parser or layout_parser
    options = PhotoOptions(person=request.person, frame=FrameOptions(retarget=request.retarget,
                                                                     allow_invent=request.allow_invent),
                           method=request.method, layout=request.layout)
    with PhotoModels(recapturer, parser, request.verbose) as models:
        found = run_photo(PhotoRequest(source=source, target=target.keypoints, edits=edits,  # type: ignore[arg-type]
                                       source_pose=source_pose, source_layout=source_layout, out=request.out,
                                       invented_mask_out=request.invented_mask, quality=request.quality,
                                       options=options), models)
    result = found.result
    written: list[Path] = [request.out] + ([request.invented_mask] if request.invented_mask else [])
    if request.layout_out is not None:
        write_photo(request.layout_out, recapturer.label_set.colorize(result.target_layout))
        written.append(request.layout_out)
    if request.attention is not None:
        attention = recapturer.attention(result, request.attention)
        path = request.attention_out or request.out.with_name(request.out.stem + "_attention.png")
        write_photo(path, attention.overlay)
        written.append(path)
    return EditOutcome(image=request.out, written=tuple(written), result=result, photo=found)


def onnx_models(request: EditRequest, threads: int = 1) -> tuple[Recapturer, object | None]:
    """The recapturer and parser of ``--backend onnxruntime`` (docs/performance.md): ONNX Runtime sessions from
    the cached exports (made on first use); no torch import once they exist. The parser is the ONNX CCP parser
    unless the request names another (the pose-mask fallback, with a warning, when it cannot be made)."""
    from recapture.pipelines.onnx_photo import onnx_recapturer

    recapturer = onnx_recapturer(request.model, threads)
    if request.source_pose is not None or request.source_layout is not None or request.parser not in (None, "ccp"):
        return recapturer, None
    from recapture.pipelines.onnx_parser import onnx_default_parser

    return recapturer, onnx_default_parser(threads)


#: ``recapture edit --backend``: ``auto`` (the default) is onnxruntime whenever :func:`choose_backend` can use it.
EDIT_BACKENDS = ("auto", "torch", "onnxruntime")


@dataclass(frozen=True)
class Backend:
    """What an edit runs on. ``name``: ``torch`` or ``onnxruntime`` (then ``recapturer`` and ``parser`` are its
    models, for :func:`run_edit`); ``note``: why ``auto`` took torch (empty otherwise); ``made``: the ONNX
    files this call exported into the cache (a first run: torch was imported once to make them)."""

    name: str
    recapturer: Recapturer | None = None
    parser: object | None = None
    note: str = ""
    made: tuple[Path, ...] = ()


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` imports (the ``onnx`` extra is installed)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def torch_only(request: EditRequest) -> str:
    """Why ``request`` needs the torch backend (one line), or "" when the ONNX photo path can run it."""
    if request.method == "warp":
        return "--method warp runs on torch only"
    if request.attention is not None:
        return "--attention (SAT attention maps) needs torch"
    return ""


def choose_backend(request: EditRequest, backend: str = "auto", threads: int = 1) -> Backend:
    """The backend of ``recapture edit --backend BACKEND`` (docs/cli.md). ``torch`` and ``onnxruntime`` are taken
    as given (onnxruntime's errors raised). ``auto`` is onnxruntime when it imports, the request runs on the
    torch-free photo path (:func:`torch_only`), the model is a correspondence model
    (:func:`recapture.pipelines.onnx_photo.torch_free_problem`) and its ONNX files are cached or can be made
    now; otherwise torch, with the reason in ``note``. ``threads``: ONNX Runtime's intra-op threads."""
    from recapture.pipelines.onnx_photo import onnx_cache_dir, torch_free_problem

    if backend not in EDIT_BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(EDIT_BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return Backend("torch")
    missing = "" if onnxruntime_available() else "onnxruntime is not installed (pip install -e '.[onnx]')"
    if backend == "onnxruntime" and missing:
        raise ValueError(f"--backend onnxruntime: {missing}")
    if backend == "auto":
        note = missing or torch_only(request) or torch_free_problem(request.model)
        if note:
            return Backend("torch", note=note)
    before = set(onnx_cache_dir().glob("*.onnx"))
    try:
        recapturer, parser = onnx_models(request, threads)
    except Exception as err:  # noqa: BLE001 - auto: any failure to make or open the ONNX files means torch
        if backend == "onnxruntime":
            raise
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        return Backend("torch", note=f"the ONNX files of {request.model} could not be made ({reason})")
    made = tuple(sorted(set(onnx_cache_dir().glob("*.onnx")) - before))
    if backend == "auto" and request.layout == "network" and not recapturer.has_geometric:
        return Backend("torch", note="--layout network: this model's geometric network runs on torch only")
    return Backend("onnxruntime", recapturer, parser, made=made)


def attention_pixel(text: str | None) -> tuple[int, int] | None:
    """``"40,20"`` -> (40, 20) (y, x)."""
    if not text:
        return None
    try:
        y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--attention must be Y,X (model-frame pixel), got {text!r}") from None
    return y, x

