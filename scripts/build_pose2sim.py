"""Rebuild the pose2sim validation set (benchmarks/data/pose2sim) from the pose2sim wheel.

    .venv/bin/pip download --no-deps pose2sim==0.10.49 -d /tmp/p2s
    .venv/bin/python scripts/build_pose2sim.py /tmp/p2s/pose2sim-0.10.49-py3-none-any.whl

The wheel is read as a zip (nothing is installed). Each chosen frame is parsed by the photo path
(``parse_photo``: MediaPipe person mask and BlazePose keypoints, the bundled ``ccp`` parser), the person is
cut out at 256x176 keeping the aspect (``data/pose2sim.crop_person``) and written as JPEG crop + LIP-20
layout PNG + a row of the annotation CSV. In ``Demo_MultiPerson`` only the woman is kept (the person with
the lowest torso saturation, when mask and faces separate two people); frames where she is not separated,
or where a shoulder or hip is missing, are skipped and listed in ``build.json``.

``--still-camera`` builds the fixed-camera variant (into ``benchmarks/data/pose2sim-still`` unless ``--out``):
every crop of one person, camera and split is cut with the same window (``camera_boxes``: the union of their
person boxes), and the pairs are every ordered same-camera pair (``same_camera_pairs``): real pose changes with the
background in place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recapture.body.keypoints import missing_mask
from recapture.data.formats import write_annotations, write_layout, write_pairs
from recapture.data.manifest import SplitSpec, write_manifest
from recapture.body.parts import LIP20
from recapture.data.pose2sim import (DEFAULT_MANIFEST, PEOPLE, SIZE, SPLITS, STILL_MANIFEST, FrameId,
                                     background_colour, camera_boxes, crop_person, frame_ids, read_frame,
                                     same_camera_pairs, select_pairs, torso_saturation, usable_crop)
from recapture.fileio import atomic_path, atomic_write_text
from recapture.pipelines.human_parsing import PersonModels, load_parser, parse_photo
from recapture.pipelines.people import Person, find_people

#: The woman of Demo_MultiPerson has a torso saturation of ~15, the man ~55-80.
WOMAN_MAX_SATURATION = 35.0


def extract_videos(wheel: Path, into: Path) -> tuple[dict[str, Path], Path]:
    """Unzip the 8 demo videos and the licence: ``{person: videos folder}``, licence path."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        wanted = [licence] + [n for n in names for d in PEOPLE.values() if f"/{d}/videos/cam0" in n]
        for name in wanted:
            archive.extract(name, into)
    folders = {p: into / next(n for n in wanted if f"/{d}/videos/" in n).rsplit("/", 1)[0]
               for p, d in PEOPLE.items()}
    return folders, into / licence


def choose_person(frame: FrameId, image: np.ndarray, models: PersonModels
                  ) -> tuple[Person | None, int, str, np.ndarray]:
    """The wanted person and its index in ``parse_photo``'s numbering (or None and why not), everyone's mask."""
    mask = np.asarray(models.segmenter(image), np.float32)
    people = find_people(mask, models.faces(image) if models.faces is not None else None)
    if not people:
        return None, -1, "no person", mask
    if frame.person == "single":
        return people[0], 0, "", mask
    if len(people) < 2:
        return None, -1, "the two people are not separated", mask
    saturation = [torso_saturation(image, p.mask) for p in people[:2]]
    index = int(np.nanargmin(saturation))
    if not saturation[index] <= WOMAN_MAX_SATURATION:
        return None, -1, f"no low-saturation torso ({saturation})", mask
    return people[index], index, "", mask


def person_box(person: Person, keypoints: np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the person's mask component (not stray mask blobs elsewhere) and its joints."""
    points = keypoints[~missing_mask(keypoints)]
    y0, x0, y1, x1 = person.box
    return (min(y0, int(points[:, 0].min())), min(x0, int(points[:, 1].min())),
            max(y1, int(points[:, 0].max()) + 1), max(x1, int(points[:, 1].max()) + 1))


def parse_frames(wheel: Path, out: Path, models: PersonModels) -> tuple[list, dict[str, str]]:
    """Every chosen frame parsed: ``[(frame, image, parsed, person box, fill colour)]`` and the skipped frames
    with why; the wheel's licence is copied into ``out``."""
    parser = load_parser("ccp")
    found, skipped = [], {}
    with tempfile.TemporaryDirectory() as temporary:
        videos, licence = extract_videos(wheel, Path(temporary))
        shutil.copyfile(licence, out / "LICENSE")
        for person in PEOPLE:
            for frame in (f for split in SPLITS for f in frame_ids(person, split)):
                image = read_frame(videos[person] / f"cam0{frame.camera}.mp4", frame.frame)
                person_found, index, why, everyone = choose_person(frame, image, models)
                if person_found is None:
                    skipped[frame.name] = why
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parsed = parse_photo(image, parser, index, models)
                if missing_mask(parsed.keypoints).all():
                    skipped[frame.name] = "no pose found"
                    continue
                found.append((frame, image, parsed, person_box(person_found, parsed.keypoints),
                              background_colour(image, everyone)))
                print(frame.name, "people", parsed.people, "person", index, flush=True)
    return found, skipped


def build(wheel: Path, out: Path, pairs_per_person: int, seed: int, still_camera: bool = False) -> dict:
    """Write the set into ``out`` (crops, layouts, annotations, pairs, manifest, licence, build.json)."""
    torch.set_num_threads(1)
    images_dir, layouts_dir = out / "images", out / "layouts"
    for folder, pattern in ((images_dir, "*-cam*-f*.jpg"), (layouts_dir, "*-cam*-f*.png")):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(pattern):
            stale.unlink()
    with PersonModels.open() as models:
        found, skipped = parse_frames(wheel, out, models)
    boxes = {frame: box for frame, _, _, box, _ in found}
    if still_camera:
        boxes = camera_boxes(boxes)
    names, keypoints = [], []
    for frame, image, parsed, _, fill in found:
        crop = crop_person(image, parsed.labels, parsed.keypoints, boxes[frame], fill)
        why = usable_crop(crop.labels, crop.keypoints)
        if why:
            skipped[frame.name] = why
            continue
        with atomic_path(images_dir / frame.name) as tmp:
            Image.fromarray(crop.image).save(tmp, format="JPEG", quality=90)
        write_layout(layouts_dir / frame.name.replace(".jpg", ".png"), crop.labels, LIP20)
        names.append(frame.name)
        keypoints.append(np.where(crop.keypoints < 0, -1, np.round(crop.keypoints)))
    write_annotations(out / "annotations.csv", names, np.stack(keypoints).astype(np.int64))
    splits = {}
    for split in SPLITS:
        own = [n for n in names if FrameId.parse(n).split == split]
        chosen = same_camera_pairs(own) if still_camera else select_pairs(own, pairs_per_person, seed)
        write_pairs(out / f"pairs-{split}.csv", chosen)
        splits[split] = SplitSpec(images="images", layouts="layouts", annotations="annotations.csv",
                                  pairs=f"pairs-{split}.csv")
    write_manifest(out / "manifest.yaml", "pose2sim", "lip20", SIZE, splits)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    info = {"wheel": wheel.name, "wheel_sha256": digest, "crops": len(names), "skipped": skipped,
            "pairs_per_person": None if still_camera else pairs_per_person, "seed": seed,
            "still_camera": still_camera}
    atomic_write_text(out / "build.json", json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="pose2sim-0.10.49-py3-none-any.whl")
    parser.add_argument("--out", type=Path, help="default: benchmarks/data/pose2sim (-still with --still-camera)")
    parser.add_argument("--pairs", type=int, default=15, help="pairs per person and split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--still-camera", action="store_true",
                        help="one crop window per camera and every same-camera pair")
    args = parser.parse_args()
    if not args.wheel.is_file():
        parser.error(f"no such wheel: {args.wheel}")
    out = args.out or (STILL_MANIFEST if args.still_camera else DEFAULT_MANIFEST).parent
    info = build(args.wheel, out, args.pairs, args.seed, args.still_camera)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
