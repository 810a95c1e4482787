"""Pluggable human parsers for in-the-wild photos: each turns a photo into an ``(H, W)`` uint8 layout.

Every parser is called in the *photo* frame with ``(image_rgb (H, W, 3) uint8, keypoints (18, 2)
y/x, person_mask (H, W) float in [0, 1])`` and returns labels of its ``label_set`` (LIP-20 for all
three here); :func:`merge_to` converts them to the model's label set.

* :class:`FileLayoutParser` - a LIP-format PNG the user made elsewhere.
* :class:`ModelLayoutParser` - a parsing network exported to TorchScript or ONNX (SCHP-LIP convention).
* :class:`PoseMaskLayoutParser` - an offline, approximate layout drawn from the pose and person mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from recapture.body.keypoints import KEYPOINT_INDEX, missing_mask
from recapture.body.parts import LIP20, LabelSet, get_label_set, merge_lip20
from recapture.data.formats import read_layout
from recapture.lazy import LazyModule

torch = LazyModule("torch")  # only ModelLayoutParser needs it


class LayoutParser(Protocol):
    """``(image_rgb (H,W,3) uint8, keypoints (18,2), person_mask (H,W) float) -> (H,W) uint8 labels``."""

    label_set: LabelSet

    def __call__(self, image_rgb: np.ndarray, keypoints: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
        ...


def merge_to(labels: np.ndarray, label_set: str | LabelSet, source: str | LabelSet = "lip20") -> np.ndarray:
    """Convert ``(H, W)`` labels of ``source`` to ``label_set`` (identity, or a LIP-20 merge)."""
    target = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
    origin = source if isinstance(source, LabelSet) else get_label_set(source)
    labels = np.asarray(labels)
    if origin.name == target.name:
        return labels.astype(np.uint8, copy=True)
    if origin.name != LIP20.name:
        raise ValueError(f"cannot convert labels from {origin.name} to {target.name}: only LIP-20 merges exist")
    return merge_lip20(labels, target.name).astype(np.uint8)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an ``(h, w)`` label map to ``size = (H, W)``."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    if labels.shape == tuple(size):
        return labels.copy()
    return cv2.resize(labels, (int(size[1]), int(size[0])), interpolation=cv2.INTER_NEAREST)


class FileLayoutParser:
    """A user-supplied single-channel PNG of ``label_set`` labels (LIP format, read with ``read_layout``).

    A file whose size differs from the photo's is resized with nearest neighbour (e.g. a parse made on
    a downscaled copy); an aspect ratio more than 2% off raises ValueError, as it is another picture.
    """

    def __init__(self, path: str | Path, label_set: str | LabelSet = LIP20) -> None:
        self.path = Path(path)
        self.label_set = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
        self._labels = read_layout(self.path, self.label_set.num_parts)

    def __call__(self, image_rgb: np.ndarray, keypoints: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
        height, width = np.asarray(image_rgb).shape[:2]
        file_h, file_w = self._labels.shape
        if abs((file_w / file_h) / (width / height) - 1.0) > 0.02:
            raise ValueError(f"{self.path}: layout is {file_h}x{file_w} but the photo is {height}x{width} "
                             f"(different aspect ratio)")
        return resize_labels(self._labels, (height, width))


@dataclass(frozen=True)
class ParserInput:
    """How a parsing network wants its input (defaults: the SCHP-LIP export convention).

    The person box (mask and keypoints, plus ``margin``) is letterboxed into ``size`` on black,
    scaled to [0, 1], put in BGR order when ``bgr`` (SCHP reads with OpenCV) and normalised with
    ``mean``/``std`` given in the network's channel order (ImageNet statistics, here in BGR order).
    """

    size: tuple[int, int] = (473, 473)
    bgr: bool = True
    mean: tuple[float, float, float] = (0.406, 0.456, 0.485)
    std: tuple[float, float, float] = (0.225, 0.224, 0.229)
    margin: float = 0.1


def _person_box(keypoints: np.ndarray, person_mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """Integer ``(y0, x0, y1, x1)`` around mask and keypoints plus ``margin`` of the box size; whole image if empty."""
    height, width = person_mask.shape
    ys, xs = np.nonzero(person_mask > 0.5)
    present = keypoints[~missing_mask(keypoints)]
    ys = np.concatenate([ys, present[:, 0]])
    xs = np.concatenate([xs, present[:, 1]])
    if ys.size == 0:
        return 0, 0, height, width
    pad_y = margin * (ys.max() - ys.min() + 1)
    pad_x = margin * (xs.max() - xs.min() + 1)
    return (max(0, int(ys.min() - pad_y)), max(0, int(xs.min() - pad_x)),
            min(height, int(np.ceil(ys.max() + pad_y)) + 1), min(width, int(np.ceil(xs.max() + pad_x)) + 1))


class ModelLayoutParser:
    """A human-parsing network given by path: ``torch.export`` (``.pt2``), TorchScript (``.pt``, ``.ts``,
    ``.jit``; deprecated by PyTorch but still loaded) or ONNX (``.onnx``). These files carry the network's
    graph (not arbitrary Python), but load only files you trust.

    The network takes ``(1, 3, H, W)`` float input (see :class:`ParserInput`) and returns ``(1, C, h, w)``
    logits with ``C = label_set.num_parts``, or SCHP's nested ``[[parsing, fusion], [edge]]`` (fusion is
    used). Logits are resized to the letterboxed box, argmax'ed and pasted back; outside the box is
    background. ONNX needs ``onnxruntime`` (``pip install onnxruntime``).
    """

    def __init__(self, path: str | Path, label_set: str | LabelSet = LIP20, input: ParserInput = ParserInput(),
                 device: str | torch.device = "cpu") -> None:
        self.path = Path(path)
        self.label_set = label_set if isinstance(label_set, LabelSet) else get_label_set(label_set)
        self.input = input
        self.device = torch.device(device)
        if not self.path.is_file():
            raise FileNotFoundError(f"parser model not found: {self.path}")
        suffix = self.path.suffix.lower()
        self._session: Any = None
        if suffix in (".pt", ".ts", ".jit"):
            self._module: Any = torch.jit.load(str(self.path), map_location=self.device).eval()
        elif suffix == ".pt2":
            self._module = torch.export.load(str(self.path)).module()
            if self.device.type != "cpu":
                self._module = self._module.to(self.device)
        elif suffix == ".onnx":
            try:
                import onnxruntime
            except ImportError:
                raise ImportError(f"{self.path}: ONNX parsers need onnxruntime; pip install onnxruntime") from None
            self._module = None
            self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        else:
            raise ValueError(f"{self.path}: unknown parser model type {suffix!r}; use .pt2 (torch.export), "
                             f".pt/.ts/.jit (TorchScript) or .onnx")

    def _letterbox(self, crop: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Fit ``crop`` into the input size on black; returns the normalised CHW array and its placement."""
        size_h, size_w = self.input.size
        scale = min(size_h / crop.shape[0], size_w / crop.shape[1])
        new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
        canvas = np.zeros((size_h, size_w, 3), dtype=np.float32)
        top, left = (size_h - new_h) // 2, (size_w - new_w) // 2
        resized = cv2.resize(crop, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas[top:top + new_h, left:left + new_w] = resized.astype(np.float32) / 255.0
        if self.input.bgr:
            canvas = canvas[..., ::-1]
        # Black padding stays 0 before normalisation, as in SCHP's warpAffine with a black border.
        normalised = (canvas - np.asarray(self.input.mean, np.float32)) / np.asarray(self.input.std, np.float32)
        return np.ascontiguousarray(normalised.transpose(2, 0, 1)), (top, left, new_h, new_w)

    def _logits(self, chw: np.ndarray) -> torch.Tensor:
        if self._session is not None:
            name = self._session.get_inputs()[0].name
            output: Any = self._session.run(None, {name: chw[None]})
            output = [torch.from_numpy(np.asarray(o)) for o in output]
        else:
            with torch.no_grad():
                output = self._module(torch.from_numpy(chw[None]).to(self.device))
        while isinstance(output, (list, tuple)):
            output = output[0] if isinstance(output[0], (list, tuple)) else output[-1]
        if output.ndim != 4 or output.shape[:2] != (1, self.label_set.num_parts):
            raise ValueError(f"{self.path}: expected (1, {self.label_set.num_parts}, h, w) logits, "
                             f"got {tuple(output.shape)}")
        return output.float().cpu()

    def __call__(self, image_rgb: np.ndarray, keypoints: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
        image_rgb = np.asarray(image_rgb)
        y0, x0, y1, x1 = _person_box(np.asarray(keypoints, np.float64), np.asarray(person_mask), self.input.margin)
        chw, (top, left, new_h, new_w) = self._letterbox(image_rgb[y0:y1, x0:x1])
        logits = torch.nn.functional.interpolate(self._logits(chw), size=self.input.size, mode="bilinear",
                                                 align_corners=False)
        logits = logits[:, :, top:top + new_h, left:left + new_w]
        logits = torch.nn.functional.interpolate(logits, size=(y1 - y0, x1 - x0), mode="bilinear",
                                                 align_corners=False)
        labels = np.zeros(image_rgb.shape[:2], dtype=np.uint8)
        labels[y0:y1, x0:x1] = logits[0].argmax(dim=0).numpy().astype(np.uint8)
        return labels


_FACE_JOINTS = tuple(KEYPOINT_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))


def _joint(keypoints: np.ndarray, name: str) -> np.ndarray | None:
    """``(x, y)`` of a present joint, else None (OpenCV point order)."""
    point = keypoints[KEYPOINT_INDEX[name]]
    return None if (point == -1).any() else point[::-1].astype(np.float64)


def body_scale(keypoints: np.ndarray, person_mask: np.ndarray) -> float:
    """Estimated shoulder width in pixels: median of shoulder span, 0.8x torso and 2x nose-neck length;
    mask height / 4.3 when no joint pair is present. ValueError when there is no person at all."""
    get = lambda name: _joint(keypoints, name)  # noqa: E731
    estimates = []
    if get("right_shoulder") is not None and get("left_shoulder") is not None:
        estimates.append(np.linalg.norm(get("right_shoulder") - get("left_shoulder")))
    hips = [get("right_hip"), get("left_hip")]
    if get("neck") is not None and all(h is not None for h in hips):
        estimates.append(0.8 * np.linalg.norm(get("neck") - (hips[0] + hips[1]) / 2))
    if get("neck") is not None and get("nose") is not None:
        estimates.append(2.0 * np.linalg.norm(get("neck") - get("nose")))
    estimates = [e for e in estimates if e > 1.0]
    if estimates:
        return float(np.median(estimates))
    rows = np.nonzero((person_mask > 0.5).any(axis=1))[0]
    if rows.size == 0:
        raise ValueError("no person: the keypoints and the person mask are both empty")
    return max(2.0, (rows[-1] - rows[0] + 1) / 4.3)


class PoseMaskLayoutParser:
    """An approximate LIP-20 layout drawn from keypoints and the person mask (no parsing model needed).

    With ``s`` the :func:`body_scale` (shoulder width): face = ellipse at the nose (or eyes/ears);
    hair = a larger head ellipse above the chin minus the face; arms = capsules along the arm bones
    (left/right); upper_clothes = the shoulder-hip polygon (shoulders extended 1.25 s down when the
    hips are missing); pants = hips to ankles (``pants_to="ankle"``) or to knees, bare legs below;
    shoes = disks just below the ankles. Everything is clipped to the mask (> 0.5); remaining mask
    pixels take the nearest drawn label; outside the mask is background. Fine for the models' coarse
    layout input; a real parser is better for clothing edges, skirts, dresses and held objects.
    """

    label_set = LIP20

    def __init__(self, pants_to: str = "ankle") -> None:
        if pants_to not in ("ankle", "knee"):
            raise ValueError(f"pants_to must be 'ankle' or 'knee', got {pants_to!r}")
        self.pants_to = pants_to

    def __call__(self, image_rgb: np.ndarray, keypoints: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(person_mask) > 0.5
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.shape != (18, 2):
            raise ValueError(f"keypoints must be (18, 2), got {keypoints.shape}")
        if mask.shape != np.asarray(image_rgb).shape[:2]:
            raise ValueError(f"person mask {mask.shape} does not match the image {np.asarray(image_rgb).shape[:2]}")
        labels = np.zeros(mask.shape, dtype=np.uint8)
        if not mask.any():
            return labels
        s = body_scale(keypoints, person_mask)
        for part, shape in self._shapes(keypoints, s, mask.shape):
            labels[shape & mask] = LIP20.index(part)
        return _fill_nearest(labels, mask)

    def _shapes(self, keypoints: np.ndarray, s: float, shape: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
        """Parts in painting order (later ones cover earlier ones) with their boolean regions."""
        get = lambda name: _joint(keypoints, name)  # noqa: E731
        canvas = lambda: np.zeros(shape, dtype=np.uint8)  # noqa: E731
        parts: list[tuple[str, np.ndarray]] = []
        shoulders = [get("right_shoulder"), get("left_shoulder")]
        hips = [get("right_hip"), get("left_hip")]
        if all(p is not None for p in shoulders):
            lower = hips if all(h is not None for h in hips) else [p + (0.0, 1.25 * s) for p in shoulders]
            corners = np.array(shoulders + lower)
            region = canvas()
            cv2.fillConvexPoly(region, np.round(cv2.convexHull(corners.astype(np.float32))).astype(np.int32), 1)
            parts.append(("upper_clothes", region.astype(bool)))
        for side in ("right", "left"):
            hip, knee, ankle = get(f"{side}_hip"), get(f"{side}_knee"), get(f"{side}_ankle")
            pants, legs = canvas(), canvas()
            _capsule(pants, hip, knee, 0.17 * s)
            _capsule(pants if self.pants_to == "ankle" else legs, knee, ankle, 0.12 * s)
            if all(p is not None for p in (hips[0], hips[1], knee)):
                other = hips[1] if side == "right" else hips[0]
                cv2.fillConvexPoly(pants, np.round(np.array([hip, other, knee])).astype(np.int32), 1)
            parts += [("pants", pants.astype(bool)), (f"{side}_leg", legs.astype(bool))]
            if ankle is not None:
                shoe = canvas()
                cv2.circle(shoe, _int_point(ankle + (0.0, 0.08 * s)), max(1, round(0.13 * s)), 1, -1)
                parts.append((f"{side}_shoe", shoe.astype(bool)))
        for side in ("right", "left"):
            shoulder, elbow, wrist = get(f"{side}_shoulder"), get(f"{side}_elbow"), get(f"{side}_wrist")
            arm = canvas()
            _capsule(arm, shoulder, elbow if elbow is not None else wrist, 0.12 * s)
            _capsule(arm, elbow, wrist, 0.1 * s)
            if wrist is not None and elbow is not None:
                direction = (wrist - elbow) / max(np.linalg.norm(wrist - elbow), 1e-6)
                _capsule(arm, wrist, wrist + 0.18 * s * direction, 0.1 * s)
            parts.append((f"{side}_arm", arm.astype(bool)))
        face = [keypoints[j][::-1] for j in _FACE_JOINTS if (keypoints[j] != -1).all()]
        if face:
            centre = get("nose") if get("nose") is not None else np.mean(face, axis=0) + (0.0, 0.05 * s)
            head, face_region = canvas(), canvas()
            cv2.ellipse(head, _int_point(centre - (0.0, 0.15 * s)), _int_axes(0.32 * s, 0.38 * s), 0, 0, 360, 1, -1)
            head[int(min(shape[0], max(0, round(centre[1] + 0.25 * s)))):] = 0
            cv2.ellipse(face_region, _int_point(centre), _int_axes(0.2 * s, 0.25 * s), 0, 0, 360, 1, -1)
            parts += [("hair", head.astype(bool)), ("face", face_region.astype(bool))]
        return parts


def _int_point(point: np.ndarray) -> tuple[int, int]:
    return int(round(point[0])), int(round(point[1]))


def _int_axes(a: float, b: float) -> tuple[int, int]:
    return max(1, int(round(a))), max(1, int(round(b)))


def _capsule(canvas: np.ndarray, start: np.ndarray | None, end: np.ndarray | None, radius: float) -> None:
    """Draw a filled capsule of ``radius`` between two ``(x, y)`` points (no-op if either is missing)."""
    if start is None or end is None:
        return
    cv2.line(canvas, _int_point(start), _int_point(end), 1, thickness=max(1, int(round(2 * radius))))
    for point in (start, end):
        cv2.circle(canvas, _int_point(point), max(1, int(round(radius))), 1, -1)


def _fill_nearest(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give every unlabelled mask pixel the label of the nearest labelled pixel; background outside the mask."""
    seeds = labels > 0
    if not seeds.any():
        raise ValueError("pose-mask parsing drew no part: it needs at least the shoulders, a face joint or a leg")
    _, nearest = cv2.distanceTransformWithLabels((~seeds).astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the seed pixels 1, 2, ... in row-major order.
    lookup = np.concatenate([[0], labels[seeds]]).astype(np.uint8)
    filled = lookup[nearest]
    return np.where(mask, np.where(seeds, labels, filled), 0).astype(np.uint8)
