"""The `ccp` parser's layouts of the CCP photos, cached once at the training size (what the appearance
network sees at test time instead of CCP's ground-truth labels).

``python -m recapture.training.parsed_photos --photos runs/appearance-real/ccp-256x176.npz`` parses every photo
of the photo cache at its native size with the real-photo path (:func:`parse_photo`: MediaPipe person mask and
pose, bundled `ccp` parser), fits the labels to the cache's size exactly as :func:`fit_photo` fitted the photo,
and writes ``ccp-parsed-HxW.npz`` (``labels (N, H, W)`` uint8 LIP-20, ``ids``, ``parsed (N,)`` bool: False where
no person was found and the ground truth was kept). Resumable: partial results are saved every ``save_every``
photos. The held-out photos are parsed too but only the benchmark reads them. A photo cache that does not exist
yet is built first (:func:`build_photos`, the 1,004 labelled photos at ``--size``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recapture.data.ccp import LABELLED_IDS, CcpDataset
from recapture.data.ccp_pairs import CcpPhotos, build_photos, fit_photo
from recapture.data.formats import read_annotations
from recapture.fileio import atomic_path


@dataclass(frozen=True)
class ParsedLayouts:
    """``labels (N, H, W)`` uint8 LIP-20 fitted like the photo cache; ``ids (N,)``; ``parsed (N,)`` bool."""

    labels: np.ndarray
    ids: np.ndarray
    parsed: np.ndarray

    def save(self, path: str | Path) -> None:
        with atomic_path(Path(path)) as temporary:
            np.savez(temporary, labels=self.labels, ids=self.ids, parsed=self.parsed)

    @staticmethod
    def load(path: str | Path) -> ParsedLayouts:
        with np.load(path) as data:
            return ParsedLayouts(labels=data["labels"], ids=data["ids"], parsed=data["parsed"])

    def for_photos(self, photos: CcpPhotos) -> np.ndarray:
        """``(N, H, W)`` labels in the row order of ``photos``; ValueError naming a photo id that is missing."""
        position = {int(i): n for n, i in enumerate(self.ids)}
        missing = [int(i) for i in photos.ids if int(i) not in position]
        if missing:
            raise ValueError(f"parsed layouts lack photo {missing[0]:04d} (and {len(missing) - 1} more)")
        return self.labels[[position[int(i)] for i in photos.ids]]


def parse_cache(photos: CcpPhotos, root: Path, keypoints_csv: Path, out: Path, save_every: int = 100,
                log: callable = print) -> ParsedLayouts:
    """Parse (or finish parsing) every photo of ``photos``; see the module doc."""
    from recapture.pipelines.human_parsing import CcpParser, NoPersonError, PersonModels, parse_photo

    size = photos.labels.shape[1:]
    done = ParsedLayouts.load(out) if out.is_file() else ParsedLayouts(
        np.zeros((0, *size), np.uint8), np.zeros(0, np.int64), np.zeros(0, bool))
    labels, ids, parsed = list(done.labels), [int(i) for i in done.ids], list(done.parsed)
    dataset = CcpDataset(root, tuple(int(i) for i in photos.ids))
    table = read_annotations(keypoints_csv)
    parser, started = CcpParser(), time.monotonic()
    with PersonModels.open() as models:
        for row, photo_id in enumerate(int(i) for i in photos.ids):
            if photo_id in ids:
                continue
            image = dataset.photo(photo_id)
            keypoints = table.get(dataset.photo_name(photo_id)).astype(np.float64)
            try:
                native = parse_photo(image, parser, 0, models).labels
                ok = True
            except NoPersonError:
                native, ok = None, False
            fitted = photos.labels[row] if native is None else fit_photo(image, native, keypoints, size)[1]
            labels.append(fitted.astype(np.uint8))
            ids.append(photo_id)
            parsed.append(ok)
            if len(ids) % save_every == 0:
                ParsedLayouts(np.stack(labels), np.asarray(ids), np.asarray(parsed)).save(out)
                log(f"{len(ids)} photos parsed, {time.monotonic() - started:.0f} s")
    result = ParsedLayouts(np.stack(labels), np.asarray(ids, dtype=np.int64), np.asarray(parsed, dtype=bool))
    result.save(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="cache the ccp parser's layouts of the CCP photo cache")
    parser.add_argument("--photos", default="runs/appearance-real/ccp-256x176.npz")
    parser.add_argument("--out", default="runs/appearance-real/ccp-parsed-256x176.npz")
    parser.add_argument("--ccp", default=str(Path(__file__).resolve().parents[4] / "shared" / "data" / "ccp"))
    parser.add_argument("--keypoints", default="src/recapture/assets/ccp-keypoints.csv")
    parser.add_argument("--size", default="256x176", help="HxW of a photo cache built here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not Path(args.photos).is_file():
        height, width = (int(v) for v in args.size.split("x"))
        build_photos(args.ccp, tuple(LABELLED_IDS), args.keypoints, (height, width)).save(args.photos)
        print(time.strftime("%H:%M:%S"), f"wrote the photo cache {args.photos}", flush=True)
    result = parse_cache(CcpPhotos.load(args.photos), Path(args.ccp), Path(args.keypoints), Path(args.out),
                         log=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True))
    print(f"wrote {args.out}: {len(result.ids)} photos, {int((~result.parsed).sum())} without a person found")


if __name__ == "__main__":
    main()
