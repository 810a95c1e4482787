"""Real photos end to end (issue 16's report): per photo the framing detected, the people found, the time,
the own-pose round trip and a contact sheet of the edits.

For each photo, with the ``default`` model and the ``ccp`` parser, exactly as ``recapture edit`` runs it:
1. the own-pose round trip (``run_photo`` with no target): framing, people, stage times, and over the
   person's box (the box of its mask) the PSNR against the input and the high-frequency detail kept
   (mean absolute Laplacian inside the mask, output / input; :func:`round_trip_scores`);
2. re-posed to ``--pose``, then the same thinner (body=0.8), fatter (body=1.25) and re-dressed
   (``lower=pants`` when a skirt or dress covers over 10% of the parsed person, else ``lower=skirt``):
   ``recapture.demo.edit_photo``.
A photo the path refuses gets a row with the refusal. The contact sheet (input | re-posed | thinner |
fatter | re-dressed per row) goes to ``docs/real-photos.png``; the table to benchmarks/results/real_photos.md.

Photos: CCP held-out photos (Apache-2.0, ../shared/data/ccp; measured once per final model, never used to
choose one), two crops of them (upper body, to the knees) for the framing rule, and two Pose2Sim studio
frames (BSD-3-Clause, benchmarks/data/pose2sim) when that folder exists.

    nohup .venv/bin/python benchmarks/real_photos.py > runs/real_photos.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recapture.body.parts import LIP20
from recapture.demo import edit_photo, labelled_row, stack_rows
from recapture.evaluation.roundtrip import round_trip_scores
from recapture.fileio import atomic_path, atomic_write_text
from recapture.pipelines.photo import PhotoModels, PhotoRequest, run_photo
from recapture.pipelines.recapture import Recapturer

ROOT = Path(__file__).resolve().parents[1]
CCP = ROOT.parent / "shared" / "data" / "ccp" / "photos"
POSE2SIM = ROOT / "benchmarks" / "data" / "pose2sim" / "images"
HELD_OUT = ("0905", "0909", "0911", "0930", "0939", "0960", "0996", "1004")
#: (photo, share of its height kept from the top, label): crops that show part of the body.
CROPS = (("0930", 0.45, "upper-body crop"), ("0996", 0.7, "crop to the knees"), ("0939", 0.16, "face-only crop"))
POSE2SIM_FRAMES = ("single-cam1-f004.jpg", "single-cam3-f024.jpg")
SHEET_LIMIT = 1_500_000  # bytes


@dataclass(frozen=True)
class Photo:
    """label: the table's name; image: ``(H, W, 3)`` uint8; source: where it comes from and its licence."""

    label: str
    image: np.ndarray
    source: str


def photos() -> list[Photo]:
    """The photos of the report (see the module docstring)."""
    def read(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    found = [Photo(f"CCP {n}", read(CCP / f"{n}.jpg"), "CCP held-out, Apache-2.0") for n in HELD_OUT]
    for name, share, label in CROPS:
        image = read(CCP / f"{name}.jpg")
        found.append(Photo(f"CCP {name}, {label}", image[: round(image.shape[0] * share)],
                           "CCP held-out, Apache-2.0"))
    found += [Photo(f"Pose2Sim {n.removesuffix('.jpg')}", read(POSE2SIM / n), "Pose2Sim demo, BSD-3-Clause")
              for n in POSE2SIM_FRAMES if (POSE2SIM / n).is_file()]
    return found


def clothing_for(labels: np.ndarray) -> str:
    """``lower=pants`` when a skirt or a dress covers over 10% of the parsed person, else ``lower=skirt``."""
    person = labels != LIP20.index("background")
    worn = np.isin(labels, [LIP20.index("skirt"), LIP20.index("dress")]).sum() / max(int(person.sum()), 1)
    return "lower=pants" if worn > 0.1 else "lower=skirt"


def measure(models: PhotoModels, photo: Photo, pose: str) -> tuple[dict, np.ndarray | None]:
    """One table row and one contact-sheet row (None when the photo is refused)."""
    row: dict = {"photo": photo.label, "source": photo.source, "size": list(photo.image.shape[:2])}
    start = time.perf_counter()
    try:
        own = run_photo(PhotoRequest(source=photo.image), models)
    except ValueError as error:
        row.update(refused=str(error), seconds=round(time.perf_counter() - start, 2))
        return row, None
    prepared = own.prepared
    scores = round_trip_scores(photo.image, own.composite, prepared.segmented.person_mask > 0.5)
    clothing = clothing_for(prepared.parsed.labels)
    edited = edit_photo(models, photo.image, pose, clothing, photo.label)
    row.update(framing=prepared.framed.extent, people=prepared.people, parser=prepared.parsed.parser,
               seconds=round(sum(own.timings.values()), 2), timings={k: round(v, 3) for k, v in own.timings.items()},
               psnr=scores.psnr, detail=scores.detail, edit_seconds=round(edited.seconds, 2), pose=pose,
               clothing=clothing, framing_after_edit=edited.prepared.framed.extent,
               messages=list(own.messages) + list(edited.prepared.messages))
    captions = [f"{photo.label}", f"re-posed ({pose})", *edited.captions[1:]]
    return row, labelled_row([photo.image, *edited.outputs], captions, height=180, caption_height=13)


def write_sheet(rows: list[np.ndarray], path: Path) -> int:
    """The contact sheet as PNG, quantised to 256 colours when the full-colour one is over the limit."""
    picture = Image.fromarray(stack_rows(rows))
    for attempt in (picture, picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)):
        with atomic_path(path) as tmp:
            attempt.save(tmp, optimize=True)
        if path.stat().st_size <= SHEET_LIMIT:
            break
    return path.stat().st_size


def markdown(report: dict) -> str:
    lines = ["| photo | size (HxW) | framing | people | time (s) | own-pose PSNR (dB) | detail kept | 4 edits (s) "
             "| re-dressed | warnings |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["photos"]:
        size = f"{r['size'][0]}x{r['size'][1]}"
        if "refused" in r:
            lines.append(f"| {r['photo']} | {size} | refused: {r['refused']} | | {r['seconds']} | | | | | |")
            continue
        lines.append(f"| {r['photo']} | {size} | {r['framing']} | {r['people']} | {r['seconds']} | {r['psnr']} | "
                     f"{r['detail']:.0%} | {r['edit_seconds']} | {r['clothing']} | {'; '.join(r['messages'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--parser", default="ccp")
    parser.add_argument("--pose", default="walking")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_photos")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "real-photos.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recapturer = Recapturer.from_pretrained(args.model)
    table, sheet = [], []
    with PhotoModels(recapturer, args.parser) as models, torch.inference_mode():
        for photo in photos():
            row, picture = measure(models, photo, args.pose)
            table.append(row)
            sheet += [picture] if picture is not None else []
            print(json.dumps(row), flush=True)
    report = {"model": args.model, "parser": args.parser, "pose": args.pose, "threads": 1,
              "machine": platform.processor() or platform.machine(), "load_average": list(os.getloadavg()),
              "photos": table, "sheet": str(args.sheet.relative_to(ROOT)),
              "sheet_bytes": write_sheet(sheet, args.sheet)}
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
