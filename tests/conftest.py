"""Shared fixtures: the real annotation files and a tiny on-disk dataset built from known parts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recapture.body.keypoints import KEYPOINT_INDEX
from recapture.body.parts import LIP20
from recapture.data.formats import layout_name, write_annotations, write_layout, write_pairs
from recapture.data.manifest import SplitSpec, write_manifest

#: The shared folder lies beside the checkout (``../shared``), in a session and in CI alike.
# Tests use tiny tensors: one intra-op thread avoids thread start-up overhead that dominates them
# (and contention on a shared 2-core machine).
torch.set_num_threads(1)

REAL_KEYPOINTS = Path(os.environ.get("RECAPTURE_REAL_KEYPOINTS",
                                     Path(__file__).resolve().parents[2] / "shared" / "data" / "real-keypoints"))
TINY_SIZE = (32, 24)
#: Part boxes of the tiny person (rows, cols), deliberately asymmetric so a mirror is visible.
TINY_PARTS = {
    "face": (slice(2, 8), slice(8, 14)),
    "upper_clothes": (slice(8, 20), slice(7, 15)),
    "right_arm": (slice(8, 20), slice(2, 7)),
    "left_arm": (slice(8, 18), slice(15, 21)),
    "right_leg": (slice(20, 31), slice(6, 10)),
    "left_leg": (slice(20, 29), slice(11, 15)),
}
#: Joints placed inside a part of the tiny person: joint -> (y, x, part). Others are missing.
TINY_JOINTS = {
    "nose": (5, 11, "face"), "neck": (8, 11, "upper_clothes"),
    "right_wrist": (18, 4, "right_arm"), "left_wrist": (16, 18, "left_arm"),
    "right_ankle": (29, 8, "right_leg"), "left_ankle": (27, 13, "left_leg"),
}


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a generator fixture
    """ONNX files that a `recapture edit` (onnxruntime by default) exports go to a session folder, never the
    user's cache; subprocesses inherit it."""
    before = os.environ.get("RECAPTURE_CACHE")
    os.environ["RECAPTURE_CACHE"] = str(tmp_path_factory.mktemp("recapture-cache"))
    yield Path(os.environ["RECAPTURE_CACHE"])
    if before is None:
        os.environ.pop("RECAPTURE_CACHE", None)
    else:
        os.environ["RECAPTURE_CACHE"] = before


def symmetric_label(labels: np.ndarray) -> np.ndarray:
    """The smaller of each label and its left/right mirror: tiny images colour both arms alike."""
    return np.minimum(labels, np.asarray(LIP20.flip_permutation)[labels])


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Folder of the published DeepFashion/Market annotation files (RECAPTURE_REAL_KEYPOINTS overrides)."""
    if not (REAL_KEYPOINTS / "market-annotation-test.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"real annotation files not found in {REAL_KEYPOINTS}: CI must run these tests")
        pytest.skip(f"real annotation files not found in {REAL_KEYPOINTS} (set RECAPTURE_REAL_KEYPOINTS)")
    return REAL_KEYPOINTS


def build_tiny_dataset(root: Path, count: int = 4, pad: int = 0, seed: int = 0) -> Path:
    """Write ``count`` 32x24 person images (stored ``pad`` px wider each side), layouts, CSVs and a manifest.

    Each image shifts the tiny person by a random (dy, dx); part pixels carry the part's palette colour
    (left and right parts alike, see :func:`symmetric_label`, so a mirrored image still matches its
    relabelled layout); background pixels are random. Keypoints are stored in the padded frame and the
    manifest's offset undoes it. Pairs: every image with the next one. Returns the manifest path.
    """
    rng = np.random.default_rng(seed)
    height, width = TINY_SIZE
    for folder in ("images", "layouts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names, rows = [], []
    palette = np.asarray(LIP20.palette, dtype=np.uint8)
    for i in range(count):
        dy, dx = (int(v) for v in rng.integers(-1, 2, size=2))
        labels = np.zeros((height, width + 2 * pad), dtype=np.uint8)
        for part, (rs, cs) in TINY_PARTS.items():
            labels[rs.start + dy:rs.stop + dy, cs.start + dx + pad:cs.stop + dx + pad] = LIP20.index(part)
        image = rng.integers(0, 256, size=(*labels.shape, 3), dtype=np.uint8)
        image[labels > 0] = palette[symmetric_label(labels[labels > 0])]
        name = f"person_{i:03d}.png"
        Image.fromarray(image).save(root / "images" / name)
        write_layout(root / "layouts" / layout_name(name), labels, LIP20 if i % 2 else None)
        keypoints = np.full((18, 2), -1, dtype=np.int64)
        for joint, (y, x, _) in TINY_JOINTS.items():
            keypoints[KEYPOINT_INDEX[joint]] = (y + dy, x + dx + pad)
        names.append(name)
        rows.append(keypoints)
    write_annotations(root / "annotations.csv", names, np.stack(rows))
    write_pairs(root / "pairs.csv", [(names[i], names[(i + 1) % count]) for i in range(count)])
    split = SplitSpec(images="images", layouts="layouts", annotations="annotations.csv", pairs="pairs.csv")
    write_manifest(root / "tiny.yaml", name="tiny", label_set="lip20", image_size=TINY_SIZE,
                   splits={"train": split}, keypoint_offset=(0, -pad))
    return root / "tiny.yaml"


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    """Manifest of a 4-image, 4-pair tiny dataset in ``tmp_path``."""
    return build_tiny_dataset(tmp_path / "tiny")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight generator of ``configs/tiny.yaml`` (seed 0) saved as a model file."""
    from recapture.config import load_config
    from recapture.hub import save_generator
    from recapture.models.generator import RecaptureGenerator

    torch.manual_seed(0)
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").model
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_generator(RecaptureGenerator(config).state_dict(), config, path, {"trained_on": "random init"})


def random_tiny_model(folder: Path, network: str, std: float, **changes: object) -> Path:
    """A tiny ``appearance: correspondence`` generator (``tiny.yaml`` with ``changes``) whose ``network``
    (``appearance`` or ``geometric``) has random normal weights of ``std`` everywhere (zero-initialised heads too,
    so every part of its graph matters), saved under ``folder``."""
    import dataclasses

    from recapture.config import load_config
    from recapture.hub import save_generator
    from recapture.models.generator import RecaptureGenerator

    tiny = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml").model
    config = dataclasses.replace(tiny, appearance="correspondence", **changes)
    torch.manual_seed(0)
    generator = RecaptureGenerator(config)
    with torch.no_grad():
        for parameter in getattr(generator, network).parameters():
            parameter.normal_(0.0, std)
    return save_generator(generator.state_dict(), config, folder / "tiny.safetensors", half=False)
