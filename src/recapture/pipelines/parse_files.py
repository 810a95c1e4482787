"""``recapture parse``: photos in, one LIP-20 layout PNG, one keypoints JSON (and optionally an overlay) per photo
out (docs/cli.md); the parser on the chosen backend (ONNX Runtime or torch). The parsing itself is
:func:`recapture.pipelines.human_parsing.parse_photo`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from recapture.body.parts import LIP20
from recapture.fileio import atomic_path, atomic_write_text
from recapture.pipelines.human_parsing import (CcpParser, NoPersonError, ParseResult, PersonModels, load_parser,
                                               parse_photo)
from recapture.pipelines.parsing import LayoutParser


@dataclass(frozen=True)
class ParsedPhoto:
    """What ``recapture parse`` wrote for one photo (``error`` set and nothing written when it failed)."""

    photo: Path
    layout: Path | None
    keypoints: Path | None
    overlay: Path | None
    people: int
    person: int
    confidence: dict[str, float]
    error: str | None = None


def photo_paths(inputs: list[str | Path]) -> list[Path]:
    """Photos named by ``inputs`` (files, or folders: their photos sorted by name); ValueError if none."""
    from recapture.pipelines.poses import PHOTO_SUFFIXES

    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such photo or folder")
    if not found:
        raise ValueError(f"no photo ({', '.join(PHOTO_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return found


def overlay(image: np.ndarray, result: ParseResult) -> np.ndarray:
    """The photo with the layout's colours blended in (50%) and the skeleton drawn."""
    from recapture.pipelines.photo import draw_keypoints

    colours = LIP20.colorize(result.labels).astype(np.float32)
    blended = np.where(result.labels[..., None] > 0, 0.5 * image + 0.5 * colours, image).astype(np.uint8)
    return draw_keypoints(blended, result.keypoints)


#: ``recapture parse --backend``: ``auto`` (the default) runs the bundled ``ccp`` parser on ONNX Runtime when it can.
PARSE_BACKENDS = ("auto", "torch", "onnxruntime")


def parser_on_backend(spec: str, backend: str = "auto", threads: int = 1) -> LayoutParser:
    """The parser of ``recapture parse --parser SPEC --backend BACKEND``: for the bundled ``ccp``, ``auto`` and
    ``onnxruntime`` give the ONNX Runtime parser of the photo path (int8 where it can run,
    ``$RECAPTURE_PARSER_PRECISION``; ``threads`` intra-op threads) - ``auto`` falls back to torch when ONNX
    Runtime is missing or the ONNX file cannot be made, ``onnxruntime`` raises; ``torch`` and every other parser
    spec: :func:`load_parser`. ValueError for an unknown backend or ``onnxruntime`` with another parser."""
    if backend not in PARSE_BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(PARSE_BACKENDS)}, got {backend!r}")
    if backend == "onnxruntime" and spec != "ccp":
        raise ValueError(f"--backend onnxruntime runs the bundled ccp parser only, not --parser {spec}")
    if spec == "ccp" and backend != "torch":
        from recapture.pipelines.onnx_parser import OnnxCcpParser, environment_precision  # imports neither

        precision = environment_precision()  # a bad value is the user's error under auto too
        try:
            return OnnxCcpParser("parser-ccp", threads, precision=precision)
        except ImportError as err:  # the onnx extra is not installed
            if backend == "onnxruntime":
                raise ValueError(f"--backend onnxruntime: {err.name or err} is not installed "
                                 "(pip install -e '.[onnx]')") from None
        except Exception:  # noqa: BLE001 - auto: any failure to make or open the ONNX parser means torch
            if backend == "onnxruntime":
                raise
    layout_parser = load_parser(spec)
    if isinstance(layout_parser, CcpParser):
        import torch

        torch.set_num_threads(threads)
    return layout_parser


def parse_files(inputs: list[str | Path], out: str | Path, parser: str = "ccp", person: int = 0,
                visualize: bool = False, backend: str = "torch", threads: int = 1,
                verbose: bool = False) -> list[ParsedPhoto]:
    """``recapture parse``: for each photo write ``STEM.png`` (LIP-20 palette PNG of the photo's size),
    ``STEM.json`` (keypoints for ``recapture edit --source-pose``) and with ``visualize``
    ``STEM-overlay.jpg``. Inputs sharing a stem get ``STEM-2``, ``STEM-3``, ... in input order
    (``photo_io.unique_stems``, the batch naming rule of docs/cli.md). A photo without person (number
    ``person``) gets an error and no file. ``backend``, ``threads``: :func:`parser_on_backend` (the command
    line's default backend is auto). MediaPipe's native log lines are hidden unless ``verbose``; Python warnings
    (several people found) are still shown."""
    from recapture.data.formats import write_layout
    from recapture.pipelines.stages import collected_warnings, quiet_native_logs
    from recapture.pipelines.photo_io import unique_stems
    from recapture.pipelines.wild import load_photo

    paths = photo_paths(inputs)
    layout_parser = parser_on_backend(parser, backend, threads)
    out = Path(out)
    done = []
    messages: list[str] = []
    with collected_warnings(messages), quiet_native_logs(not verbose), PersonModels.open() as models:
        for path, stem in zip(paths, unique_stems(paths)):
            image = load_photo(path)
            try:
                result = parse_photo(image, layout_parser, person, models)
            except NoPersonError as err:
                done.append(ParsedPhoto(path, None, None, None, 0, person, {}, f"{path}: {err}"))
                continue
            out.mkdir(parents=True, exist_ok=True)
            layout_path, keypoints_path = out / f"{stem}.png", out / f"{stem}.json"
            write_layout(layout_path, result.labels, LIP20)
            pose = {"keypoints": np.round(result.keypoints, 2).tolist(), "frame": list(image.shape[:2]),
                    "source": str(path), "people": result.people, "person": result.person}
            atomic_write_text(keypoints_path, json.dumps(pose) + "\n")
            overlay_path = None
            if visualize:
                overlay_path = out / f"{stem}-overlay.jpg"
                picture = cv2.cvtColor(overlay(image, result), cv2.COLOR_RGB2BGR)
                with atomic_path(overlay_path) as temporary:
                    cv2.imwrite(str(temporary), picture)
            confidence = {n: round(float(c), 4) for n, c in zip(LIP20.names, result.confidence) if np.isfinite(c)}
            done.append(ParsedPhoto(path, layout_path, keypoints_path, overlay_path, result.people, person, confidence))
    for message in messages:  # said after the quiet block, which hides stderr
        warnings.warn(message, stacklevel=2)
    return done
