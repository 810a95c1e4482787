"""Fault injection, files: damaged images of every format, oversized headers, malformed CSV/JSON/YAML, empty
and non-UTF-8 files, duplicate YAML keys. Every case must end in the project's one-line error naming the
file (never another exception type, never a silent default)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recapture.config import ConfigError, load_config
from recapture.data.formats import (MAX_IMAGE_PIXELS, FormatError, read_annotations, read_image, read_layout,
                                    read_pairs, write_annotations)
from recapture.data.manifest import read_manifest
from recapture.pipelines.poses import PoseSourceError, fit_keypoints, load_pose

pytestmark = pytest.mark.faults

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "gif": "GIF", "tif": "TIFF", "webp": "WEBP"}


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def _damaged(data: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(len(data))
    return {"empty": b"", "header-only": data[:20], "half": data[: len(data) // 2],
            "random": rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()}


def _one_line_naming(error: BaseException, path: Path) -> None:
    text = str(error)
    assert str(path) in text and "\n" not in text, text


@pytest.mark.parametrize("damage", ["empty", "header-only", "half", "random"])
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_damaged_image_is_one_format_error(tmp_path: Path, suffix: str, damage: str) -> None:
    path = tmp_path / f"{damage}.{suffix}"
    path.write_bytes(_damaged(_encoded(FORMATS[suffix]))[damage])
    with pytest.raises(FormatError) as caught:
        read_image(path)
    _one_line_naming(caught.value, path)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_intact_image_of_every_format_reads_as_rgb(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ok.{suffix}"
    path.write_bytes(_encoded(FORMATS[suffix]))
    pixels = read_image(path)
    assert pixels.shape == (40, 30, 3) and pixels.dtype == np.uint8


def _png_header(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` followed by a tiny (wrong) image stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(12000, 12000), (20000, 20000), (MAX_IMAGE_PIXELS + 1, 1), (0, 10)])
def test_image_size_is_checked_from_the_header_before_decoding(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "claims.png"
    path.write_bytes(_png_header(*size))
    with pytest.raises(FormatError, match="megapixels|cannot decode") as caught:
        read_image(path)
    _one_line_naming(caught.value, path)
    if 0 < size[0] * size[1] < 178_956_970:  # above that, Pillow's own check speaks first (also before decoding)
        assert f"{size[0]}x{size[1]}" in str(caught.value)


@pytest.mark.parametrize("size", [(9500, 9500), (11000, 10000), (20000, 10000)])
def test_photo_pixel_limit_is_the_documented_message_and_quiet(tmp_path: Path, size: tuple[int, int]) -> None:
    """``recapture edit``'s reader: Pillow's own warning (89.5 MP) never reaches the user; over the limit the
    one message names the limit, also above Pillow's own refusal (179 MP)."""
    import warnings

    from recapture.pipelines.photo_io import MAX_PIXELS, WildPhotoError, read_photo

    path = tmp_path / "claims.png"
    path.write_bytes(_png_header(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WildPhotoError) as caught:
            read_photo(path)
    _one_line_naming(caught.value, path)
    over = size[0] * size[1] > MAX_PIXELS
    assert ("megapixels; at most 100 are accepted" in str(caught.value)) == over
    assert over or "cannot read the photo" in str(caught.value)


def test_sixteen_bit_grey_png_keeps_its_intensities(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I;16")
    pixels = read_image(tmp_path / "ramp16.png")
    expected = np.round(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(pixels[..., 0], expected) and np.array_equal(pixels[..., 2], expected)
    assert abs(float(pixels.mean()) - 127.5) < 1.0  # was 254.5 (almost all white) before


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "LA", "L", "P", "CMYK"])
def test_photos_and_dataset_images_share_one_decoder(tmp_path: Path, mode: str) -> None:
    from recapture.pipelines.photo_io import read_photo

    rng = np.random.default_rng(2)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (6, 5), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "RGBA").convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    image.save(path)
    assert np.array_equal(read_photo(path).pixels, read_image(path))


def test_transparent_pixels_become_white_and_palette_images_rgb(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    pixels = read_image(tmp_path / "alpha.png")
    assert (pixels[:2] == (200, 0, 0)).all() and (pixels[2:] == 255).all()


def test_folder_and_missing_file_as_image(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.png"):
        with pytest.raises(FormatError) as caught:
            read_image(path)
        _one_line_naming(caught.value, path)
    with pytest.raises(FormatError):
        read_layout(tmp_path / "missing.png")


GOOD_ROW = "a.jpg: [" + ", ".join(["1"] * 18) + "]: [" + ", ".join(["2"] * 18) + "]"
ANNOTATION_CASES = {
    "two-fields": "a.jpg: [1, 2]",
    "four-fields": GOOD_ROW + ": [3]",
    "seventeen-ints": GOOD_ROW.replace("[1, 1,", "[1,", 1),
    "nineteen-ints": GOOD_ROW.replace("[1,", "[1, 1,", 1),
    "nan": GOOD_ROW.replace("[1,", "[nan,", 1),
    "float-huge": GOOD_ROW.replace("[1,", "[1e300,", 1),
    "int-huge": GOOD_ROW.replace("[1,", "[99999999999999,", 1),
    "below-minus-one": GOOD_ROW.replace("[1,", "[-2,", 1),
    "no-brackets": GOOD_ROW.replace("[", "", 1),
    "empty-name": GOOD_ROW.replace("a.jpg", " ", 1),
    "duplicate-name": GOOD_ROW + "\n" + GOOD_ROW,
}


@pytest.mark.parametrize("case", sorted(ANNOTATION_CASES))
def test_malformed_annotation_row_names_file_line_and_field(tmp_path: Path, case: str) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("name:keypoints_y:keypoints_x\n" + ANNOTATION_CASES[case] + "\n")
    with pytest.raises(FormatError) as caught:
        read_annotations(path)
    _one_line_naming(caught.value, path)
    assert caught.value.line in (2, 3)


def test_minus_one_is_missing_and_a_good_row_reads(tmp_path: Path) -> None:
    keypoints = np.full((1, 18, 2), 5)
    keypoints[0, 3] = -1
    write_annotations(tmp_path / "a.csv", ["a.jpg"], keypoints)
    table = read_annotations(tmp_path / "a.csv")
    assert table.missing()[0].tolist() == [i == 3 for i in range(18)]


@pytest.mark.parametrize("content", ["from,to\na.jpg\n", "from,to\na.jpg,b.jpg,c.jpg\n", "from,to\n,b.jpg\n",
                                     "to,from\na.jpg,b.jpg\n"])
def test_malformed_pairs_row(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(FormatError) as caught:
        read_pairs(path)
    _one_line_naming(caught.value, path)


BAD_TEXT = {"empty": b"", "blank": b"\n\n", "latin-1": "name:keypoints_y:keypoints_x\nb\xe9.jpg\n".encode("latin-1"),
            "binary": bytes(range(256))}


@pytest.mark.parametrize("reader", ["annotations", "pairs", "manifest", "config", "pose-json"])
@pytest.mark.parametrize("content", sorted(BAD_TEXT))
def test_empty_and_non_utf8_files_are_clear_errors(tmp_path: Path, reader: str, content: str) -> None:
    suffix = {"manifest": ".yaml", "config": ".yaml", "pose-json": ".json"}.get(reader, ".csv")
    path = tmp_path / f"{content}{suffix}"
    path.write_bytes(BAD_TEXT[content])
    calls = {"annotations": read_annotations, "pairs": read_pairs, "manifest": read_manifest,
             "config": load_config, "pose-json": load_pose}
    if reader == "config" and content in ("empty", "blank"):
        assert load_config(path) is not None  # an empty preset means "all defaults", as documented
        return
    expected = {"config": ConfigError, "pose-json": PoseSourceError}.get(reader, FormatError)
    with pytest.raises(expected) as caught:
        calls[reader](str(path))
    _one_line_naming(caught.value, path)


def test_duplicate_yaml_keys_are_errors_in_config_and_manifest(tmp_path: Path, tiny_manifest: Path) -> None:
    config = tmp_path / "dup.yaml"
    config.write_text("train:\n  steps: 5\n  lr: 0.1\n  steps: 7\n")
    with pytest.raises(ConfigError, match=r"dup.yaml, line 4: .*duplicate key 'steps'"):
        load_config(config)
    text = tiny_manifest.read_text()
    tiny_manifest.write_text(text + "name: again\n")
    with pytest.raises(FormatError, match=r"duplicate key 'name'") as caught:
        read_manifest(tiny_manifest)
    _one_line_naming(caught.value, tiny_manifest)


def test_unknown_split_key_is_an_error_naming_it(tiny_manifest: Path) -> None:
    text = tiny_manifest.read_text().replace("    pairs: pairs.csv\n", "    pairs: pairs.csv\n    pair: typo.csv\n")
    assert "pair: typo.csv" in text
    tiny_manifest.write_text(text)
    with pytest.raises(FormatError, match=r"splits.train.pair.*unknown key 'pair'") as caught:
        read_manifest(tiny_manifest)
    _one_line_naming(caught.value, tiny_manifest)


JOINT_VALUES = {"nan": float("nan"), "inf": float("inf"), "huge": 1e300, "negative": -5.0}


@pytest.mark.parametrize("case", sorted(JOINT_VALUES))
def test_json_pose_values_are_checked_naming_joint_and_value(tmp_path: Path, case: str) -> None:
    keypoints = [[10.0, 10.0]] * 18
    keypoints[7] = [JOINT_VALUES[case], 10.0]
    path = tmp_path / "pose.json"
    path.write_text(json.dumps({"keypoints": keypoints, "frame": [64, 32]}))
    with pytest.raises(PoseSourceError, match=r"joint left_wrist \(#7\) has y=") as caught:
        load_pose(str(path))
    _one_line_naming(caught.value, path)


@pytest.mark.parametrize("frame", [[0, 0], [0, 32], [-4, 32], [1e300, 2], ["a", 3], [5]])
def test_json_pose_frame_must_be_positive(tmp_path: Path, frame: list) -> None:
    path = tmp_path / "pose.json"
    path.write_text(json.dumps({"keypoints": [[1, 1]] * 18, "frame": frame}))
    with pytest.raises(PoseSourceError, match="frame must be"):
        load_pose(str(path))


def test_missing_joints_pass_and_zero_frames_never_divide(tmp_path: Path) -> None:
    path = tmp_path / "pose.json"
    path.write_text(json.dumps({"keypoints": [[-1, -1]] * 17 + [[3, 4]], "frame": [64, 32]}))
    assert load_pose(str(path)).keypoints[0].tolist() == [-1, -1]
    with pytest.raises(PoseSourceError, match="must be positive"):
        fit_keypoints(np.ones((18, 2)), (0, 0), (32, 24))
