"""Annotation/pairs CSVs, layout PNGs, images and manifests: real files, round trips, errors, fuzzing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from recapture.body.parts import LIP20, MARKET7
from recapture.cli import app
from recapture.data.errors import FormatError
from recapture.data.formats import (
    layout_name, pair_name, read_annotations, read_image, read_layout, read_pairs, write_annotations, write_layout,
    write_pairs,
)
from recapture.data.manifest import Manifest, SplitSpec, read_manifest, write_manifest

REAL_COUNTS = {
    "fasion-annotation-test.csv": ("rows", 4061),
    "market-annotation-train.csv": ("rows", 12936),
    "market-annotation-test.csv": ("rows", 19732),
    "fasion-pairs-test.csv": ("pairs", 8670),
    "market-pairs-test.csv": ("pairs", 12000),
}
HEADER = "name:keypoints_y:keypoints_x"
ROW = "a.jpg: [" + ", ".join(["1"] * 18) + "]: [" + ", ".join(["2"] * 18) + "]"
runner = CliRunner()


@pytest.mark.parametrize("file_name", sorted(REAL_COUNTS))
def test_real_files_read_with_known_counts(real_dir: Path, file_name: str) -> None:
    kind, count = REAL_COUNTS[file_name]
    if kind == "rows":
        table = read_annotations(real_dir / file_name)
        assert len(table) == count and table.keypoints.shape == (count, 18, 2)
        assert table.keypoints.dtype == np.int64 and table.keypoints.min() == -1
    else:
        assert len(read_pairs(real_dir / file_name)) == count
    result = runner.invoke(app, ["data", "inspect", str(real_dir / file_name), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[kind] == count


def test_real_files_round_trip_byte_for_byte(real_dir: Path, tmp_path: Path) -> None:
    table = read_annotations(real_dir / "market-annotation-test.csv")
    assert table.get("-1_c5s3_086412_11.jpg")[1].tolist() == [38, 0]
    assert (table.keypoints == -1).all(axis=(1, 2)).sum() > 0
    write_annotations(tmp_path / "a.csv", table.names, table.keypoints)
    assert (tmp_path / "a.csv").read_bytes() == (real_dir / "market-annotation-test.csv").read_bytes()
    pairs = read_pairs(real_dir / "fasion-pairs-test.csv")
    write_pairs(tmp_path / "p.csv", pairs)
    assert (tmp_path / "p.csv").read_bytes() == (real_dir / "fasion-pairs-test.csv").read_bytes()


def test_deepfashion_offset_moves_present_joints_only(real_dir: Path) -> None:
    frame = read_annotations(real_dir / "fasion-annotation-test.csv")
    crop = read_annotations(real_dir / "fasion-annotation-test.csv", offset=(0, -40))
    present = (frame.keypoints != -1).all(axis=-1)
    inside = present & (frame.keypoints[..., 1] >= 40)
    assert np.array_equal(crop.keypoints[inside], frame.keypoints[inside] - [0, 40])
    assert (crop.keypoints[~present] == -1).all()
    assert (crop.keypoints[present & ~inside] == -1).all()


def test_annotations_round_trip_with_missing_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    keypoints = rng.integers(0, 200, size=(5, 18, 2))
    keypoints[1] = -1
    keypoints[2, 3] = -1
    names = ["x.jpg", "-1_c1.jpg", "y z.jpg", "0000_a.jpg", "b.jpg"]
    write_annotations(tmp_path / "a.csv", names, keypoints)
    text = (tmp_path / "a.csv").read_text()
    assert text.splitlines()[0] == HEADER
    assert text.splitlines()[2] == "-1_c1.jpg: [" + ", ".join(["-1"] * 18) + "]: [" + ", ".join(["-1"] * 18) + "]"
    table = read_annotations(tmp_path / "a.csv")
    assert table.names == tuple(names) and np.array_equal(table.keypoints, keypoints)
    assert np.array_equal(table.get("y z.jpg"), keypoints[2])
    with pytest.raises(FormatError, match="a.csv.*nope.jpg"):
        table.get("nope.jpg")


def test_half_missing_joint_becomes_fully_missing(tmp_path: Path) -> None:
    ys, xs = ["5"] * 18, ["6"] * 18
    ys[4] = "-1"
    (tmp_path / "a.csv").write_text(f"{HEADER}\na.jpg: [{', '.join(ys)}]: [{', '.join(xs)}]\n")
    assert read_annotations(tmp_path / "a.csv").get("a.jpg")[4].tolist() == [-1, -1]


def _ints(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


BAD_ANNOTATIONS = {
    "short list": (f"{HEADER}\n{ROW}\nb.jpg: {_ints(['1'] * 17)}: {_ints(['2'] * 18)}\n", 3, "keypoints_y"),
    "non-numeric": (f"{HEADER}\nb.jpg: {_ints(['1'] * 18)}: {_ints(['2'] * 17 + ['x'])}\n", 2, "keypoints_x"),
    "float": (f"{HEADER}\nb.jpg: {_ints(['1.5'] + ['1'] * 17)}: {_ints(['2'] * 18)}\n", 2, "keypoints_y"),
    "missing field": (f"{HEADER}\nb.jpg: {_ints(['1'] * 18)}\n", 2, "keypoints_x"),
    "extra field": (f"{HEADER}\n{ROW}: {_ints(['2'] * 18)}\n", 2, "keypoints_x"),
    "no brackets": (f"{HEADER}\nb.jpg: {', '.join(['1'] * 18)}: {_ints(['2'] * 18)}\n", 2, "keypoints_y"),
    "no name": (f"{HEADER}\n: {_ints(['1'] * 18)}: {_ints(['2'] * 18)}\n", 2, "name"),
    "duplicate": (f"{HEADER}\n{ROW}\n\n{ROW}\n", 4, "name"),
    "below -1": (f"{HEADER}\nb.jpg: {_ints(['1'] * 18)}: {_ints(['-2'] + ['2'] * 17)}\n", 2, "keypoints_x"),
    "bad header": ("name,keypoints_y,keypoints_x\n" + ROW + "\n", 1, "header"),
    "empty": ("", 1, None),
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_malformed_annotations_name_file_line_field(tmp_path: Path, case: str) -> None:
    text, line, field = BAD_ANNOTATIONS[case]
    path = tmp_path / "bad-annotations.csv"
    path.write_text(text)
    with pytest.raises(FormatError) as info:
        read_annotations(path)
    assert "bad-annotations.csv" in str(info.value) and f"line {line}" in str(info.value)
    assert info.value.line == line and info.value.field == field
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.line == line and str(FormatError(str(copy))) == str(copy)
    result = runner.invoke(app, ["data", "inspect", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "bad-annotations.csv" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("text,line,field", [
    ("from;to\na,b\n", 1, "header"),
    ("from,to\na,b\nc\n", 3, "to"),
    ("from,to\na,b,c\n", 2, "from,to"),
    ("from,to\n,b\n", 2, "from"),
])
def test_malformed_pairs_name_file_line_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(FormatError) as info:
        read_pairs(tmp_path / "p.csv")
    assert "p.csv" in str(info.value) and info.value.line == line and info.value.field == field


def test_not_utf8_and_missing_files_are_format_errors(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(HEADER.encode() + b"\n\xff\xfe: [1]: [2]\n")
    with pytest.raises(FormatError, match="a.csv.*UTF-8"):
        read_annotations(tmp_path / "a.csv")
    with pytest.raises(FormatError, match="nope.csv"):
        read_pairs(tmp_path / "nope.csv")


_tokens = st.sampled_from(["a.jpg", "b", ":", ": ", "[", "]", ",", ", ", "-1", "7", "1" * 13, "x", " ", "\t",
                           "\r", "\x00", "\u00e9", _ints(["3"] * 18), ROW])
_lines = st.lists(st.lists(_tokens, max_size=12).map("".join) | st.text(max_size=30), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines, header=st.sampled_from([HEADER, "from,to", "junk", ""]), tail=st.binary(max_size=4))
def test_fuzzed_csvs_raise_only_format_error(tmp_path: Path, lines: list[str], header: str, tail: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(("\n".join([header, *lines])).encode("utf-8") + tail)
    for reader in (read_annotations, read_pairs):
        try:
            reader(path)
        except FormatError as exc:
            assert "fuzz.csv" in str(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(-1, 10**6), min_size=36, max_size=36),
       junk=st.text(max_size=20), position=st.integers(0, 200))
def test_fuzzed_valid_rows_with_one_corruption(tmp_path: Path, values: list[int], junk: str, position: int) -> None:
    row = f"p.jpg: {_ints([str(v) for v in values[:18]])}: {_ints([str(v) for v in values[18:]])}"
    path = tmp_path / "one.csv"
    corrupted = row[:position] + junk + row[position:]
    path.write_bytes(f"{HEADER}\n{corrupted}\n".encode("utf-8", "surrogatepass"))
    try:
        table = read_annotations(path)
    except FormatError as exc:
        assert "one.csv" in str(exc)
        assert junk, "an uncorrupted row must parse"
    else:
        assert table.keypoints.shape == (1, 18, 2)
    if not junk:
        expected = np.array(values).reshape(2, 18).T
        expected[(expected == -1).any(axis=1)] = -1
        assert np.array_equal(table.keypoints[0], expected)


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_annotations(tmp_path / "a.csv", ["a", "a"], np.zeros((2, 18, 2), dtype=int))
    with pytest.raises(ValueError):
        write_annotations(tmp_path / "a.csv", ["a"], np.full((1, 18, 2), 1.5))
    with pytest.raises(ValueError):
        write_pairs(tmp_path / "p.csv", [("a,b", "c")])


@pytest.mark.parametrize("label_set", [None, LIP20])
def test_layout_round_trip(tmp_path: Path, label_set) -> None:
    labels = np.random.default_rng(1).integers(0, 20, size=(9, 7)).astype(np.uint8)
    write_layout(tmp_path / "l.png", labels, label_set)
    with Image.open(tmp_path / "l.png") as image:
        assert image.mode == ("L" if label_set is None else "P")
        if label_set is not None:
            assert image.getpalette()[3 * 15:3 * 16] == list(LIP20.palette[15])
    read = read_layout(tmp_path / "l.png", num_parts=20)
    assert read.dtype == np.uint8 and np.array_equal(read, labels)


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    write_layout(tmp_path / "big.png", np.full((4, 4), 9, dtype=np.uint8))
    with pytest.raises(FormatError, match="big.png.*label 9"):
        read_layout(tmp_path / "big.png", num_parts=MARKET7.num_parts)
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(FormatError, match="rgb.png.*mode RGB"):
        read_layout(tmp_path / "rgb.png")
    with pytest.raises(ValueError):
        write_layout(tmp_path / "x.png", np.full((2, 2), 8), MARKET7)


def test_read_image_rgb_and_corrupt(tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "ok.png")
    assert np.array_equal(read_image(tmp_path / "ok.png"), pixels)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "gray.png")
    assert read_image(tmp_path / "gray.png").shape == (6, 5, 3)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "full.jpg", quality=90)
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    for name in ("cut.jpg", "junk.jpg", "absent.jpg"):
        with pytest.raises(FormatError, match=name):
            read_image(tmp_path / name)


def test_file_names() -> None:
    assert layout_name("x.jpg") == "x.png" and layout_name("-1_c1.jpg") == "-1_c1.png"
    assert pair_name("a.jpg", "b.jpg") == "a___b.png"


def _splits() -> dict[str, SplitSpec]:
    return {"train": SplitSpec("train", "trainLIP", "ann.csv", "pairs.csv"),
            "test": SplitSpec("test", "testLIP", "ann-t.csv", "pairs-t.csv", extras={"invisible": "invisible"})}


def test_manifest_round_trip(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.yaml", "deepfashion", "lip20", (256, 176), _splits(), keypoint_offset=(0, -40))
    manifest = read_manifest(tmp_path / "m.yaml")
    assert isinstance(manifest, Manifest)
    assert (manifest.name, manifest.label_set, manifest.image_size, manifest.keypoint_offset) == \
        ("deepfashion", "lip20", (256, 176), (0, -40))
    assert dict(manifest.splits) == _splits() and manifest.splits["test"].extras["invisible"] == "invisible"
    assert manifest.resolve("train") == tmp_path / "train"
    assert pickle.loads(pickle.dumps(manifest)) == manifest and hash(manifest.splits["test"])
    with pytest.raises(TypeError):
        manifest.splits["x"] = manifest.splits["train"]  # type: ignore[index]


_SPLIT = {"images": "a", "layouts": "b", "annotations": "c", "pairs": "d"}


@pytest.mark.parametrize("edit,key", [
    ({"colour": "red"}, "colour"),
    ({"label_set": "lip21"}, "label_set"),
    ({"image_size": [256]}, "image_size"),
    ({"keypoint_offset": [0.5, 0]}, "keypoint_offset"),
    ({"splits": {}}, "splits"),
    ({"splits": {"train": {"images": "a", "layouts": "b", "pairs": "c"}}}, "splits.train"),
    ({"splits": {"train": {**_SPLIT, "annotations": 3}}}, "splits.train.annotations"),
    ({"splits": {"train": {**_SPLIT, "invisible": None}}}, "splits.train.invisible"),
])
def test_manifest_errors_name_the_key(tmp_path: Path, edit: dict, key: str) -> None:
    content = {"name": "d", "label_set": "lip20", "image_size": [8, 8], "splits": {"train": _SPLIT}, **edit}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    with pytest.raises(FormatError) as info:
        read_manifest(tmp_path / "m.yaml")
    assert info.value.field == key and "m.yaml" in str(info.value) and info.value.line is not None
    assert key.split(".")[-1] in str(info.value)


def test_manifest_missing_field_and_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("name: d\nlabel_set: lip20\nsplits: {train: {images: a, layouts: b, "
                                     "annotations: c, pairs: d}}\n")
    with pytest.raises(FormatError, match="image_size"):
        read_manifest(tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("name: [unclosed\n")
    with pytest.raises(FormatError, match="m.yaml.*YAML"):
        read_manifest(tmp_path / "m.yaml")
