"""The demo's real people: bundled CCP photos (licence beside them) re-posed, thinner, fatter and re-dressed
through the photo stages with the bundled ``default`` model and ``ccp`` parser; the sheet helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recapture.body.parts import LIP20
from recapture.demo import (
    DEMO_PHOTOS, DemoPhoto, demo_photo_path, labelled_row, real_people_section, row_edits, stack_rows,
)


def test_bundled_photos_are_small_jpegs_with_their_licence() -> None:
    folder = demo_photo_path(DEMO_PHOTOS[0].name).parent
    assert 3 <= len(DEMO_PHOTOS) <= 4
    for photo in DEMO_PHOTOS:
        path = demo_photo_path(photo.name)
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 600 and image.height > image.width
        assert path.stat().st_size < 100_000
        assert photo.name.removeprefix("ccp-").removesuffix(".jpg") in (folder / "README.md").read_text()
        assert 905 <= int(photo.name[4:8]) <= 1004  # held-out photos only: never training data
    assert "Apache License" in (folder / "LICENSE").read_text() and "Version 2.0" in (folder / "LICENSE").read_text()
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        demo_photo_path("nowhere.jpg")


def test_row_edits_are_the_four_outputs_of_a_row() -> None:
    edits = row_edits("lower=skirt")
    assert [c.split(" ")[0] for c, _ in edits] == ["re-posed", "thinner", "fatter", "re-dressed"]
    assert edits[0][1] is None and all(e is not None for _, e in edits[1:])
    with pytest.raises(ValueError):
        row_edits("lower=cape")


def test_labelled_row_scales_each_panel_to_the_height_and_captions_it() -> None:
    tall = np.zeros((60, 30, 3), np.uint8)
    wide = np.full((10, 40, 3), 200, np.uint8)
    row = labelled_row([tall, wide], ["a", "b"], height=30, gap=2, caption_height=10)
    assert row.shape == (40, 15 + 2 + 120 + 2, 3)
    assert (row[10:, :15] == 0).all() and (row[10:, 17:137] == 200).all()  # the panels, below their captions
    assert (row[:10, :15] < 255).any() and (row[10:, 15:17] == 255).all()  # caption ink; white gap
    stacked = stack_rows([row, row[:, :20]], gap=3)
    assert stacked.shape == (2 * 43, row.shape[1], 3) and (stacked[43:83, 20:] == 255).all()
    with pytest.raises(ValueError):
        labelled_row([tall], ["a", "b"])


@pytest.mark.slow
def test_real_people_are_edited_at_their_size_inside_the_person(tmp_path: Path) -> None:
    photo = DEMO_PHOTOS[0]
    written: list[Path] = []
    section = real_people_section(tmp_path, written, photos=(DemoPhoto(photo.name, "walking", "lower=skirt"),))
    assert sorted(p.name for p in written) == ["people-ccp-0909.jpg", "people-stages.jpg"]
    assert all(p.parent == tmp_path and p.name in section.html for p in written)
    assert "full body" in section.html and "ccp" in section.html and "default" in section.html
    (edited,) = section.photos
    with Image.open(demo_photo_path(photo.name)) as image:
        source = np.asarray(image.convert("RGB"))
    assert np.array_equal(edited.photo, source)
    with Image.open(tmp_path / "people-ccp-0909.jpg") as sheet:
        assert sheet.height == 300 + 14 and sheet.width > 5 * 300 * source.shape[1] / source.shape[0]
    y0, x0, y1, x1 = edited.person_box
    assert (y1 - y0) > 0.6 * source.shape[0]  # a full-body photo
    person = (slice(y0, y1), slice(x0, x1))
    for caption, output in zip(edited.captions, edited.outputs, strict=True):
        assert output.shape == source.shape and output.dtype == np.uint8, caption
        change = np.abs(output.astype(np.int16) - source)
        assert change[person].mean() > 4, caption  # the person was redrawn
        assert output[person].std() > 20, caption  # not blank, not one colour
        assert (change.max(axis=2) > 0).mean() < 0.5, caption  # the scene is kept
    background = LIP20.index("background")
    sizes = [int((layout != background).sum()) for layout in edited.layouts]
    assert sizes[1] < sizes[0] < sizes[2]  # thinner < re-posed < fatter
    skirt = LIP20.index("skirt")
    assert (edited.layouts[3] == skirt).sum() > 50 and (edited.layouts[0] == skirt).sum() < 10
    assert not np.array_equal(edited.outputs[1], edited.outputs[2])
