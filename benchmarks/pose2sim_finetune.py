"""Does fine-tuning the appearance network on other frames of the same people help? (issue 15, a small experiment)

The bundled ``default`` model's correspondence appearance network is fine-tuned on every ordered pair of
crops of one person among the pose2sim **validation** frames (0-49; the committed validation pairs are a
subset of them), with the target layout it gets at test time (the part-affine warp of the source layout) and
an L1 loss at 256x176. Nothing from the test frames (50-99) is used. The weights are written to
``RUN/finetuned.safetensors`` (``load_correspondence`` format); score them against the unchanged network in one
run with

    .venv/bin/python benchmarks/pose2sim_finetune.py --run runs/pose2sim-finetune
    .venv/bin/python benchmarks/pose2sim.py --weights "fine-tuned on validation frames=runs/pose2sim-finetune/finetuned.safetensors" --name pose2sim-finetune
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from recapture.data.dataset import collate_pairs
from recapture.data.pose2sim import DEFAULT_MANIFEST, FrameId, load_split
from recapture.fileio import atomic_path
from recapture.hub import load_generator
from recapture.models.correspondence import CorrespondenceGenerator, repose


def validation_pairs(manifest: Path) -> list[tuple[str, str]]:
    """Every ordered pair of two different validation crops of one person."""
    ids = [FrameId.parse(n) for n in sorted(load_split("validation", manifest).annotations.names)]
    ids = [i for i in ids if i.split == "validation"]
    return [(a.name, b.name) for a in ids for b in ids if a.person == b.person and a != b]


def finetune(network: CorrespondenceGenerator, manifest: Path, steps: int, batch_size: int, lr: float, seed: int,
             log: callable = print) -> CorrespondenceGenerator:
    """A fine-tuned copy of ``network`` (the original is left untouched)."""
    model = copy.deepcopy(network).train().requires_grad_(True)
    dataset = load_split("validation", manifest)
    dataset.pairs = validation_pairs(manifest)
    log(f"{len(dataset.pairs)} training pairs from the validation frames")
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    started, losses = time.time(), []
    for step in range(1, steps + 1):
        batch = collate_pairs([dataset[int(i)] for i in rng.choice(len(dataset), batch_size, replace=False)])
        made = repose(model, batch.source_image, batch.source_layout.argmax(dim=1),
                      batch.source_keypoints.double().numpy(), batch.target_keypoints.double().numpy()).image
        loss = (made - batch.target_image).abs().mean() / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0 or step == steps:
            log(f"step {step}: L1 {np.mean(losses[-25:]):.4f} ({time.time() - started:.0f} s)")
    return model.eval().requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/pose2sim-finetune"))
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    network = load_generator("default").generator.appearance
    model = finetune(network, args.manifest, args.steps, args.batch_size, args.lr, args.seed,
                     log=lambda line: print(line, flush=True))
    args.run.mkdir(parents=True, exist_ok=True)
    metadata = {"config": json.dumps(asdict(model.config)), "finetuned_from": "default",
                "data": "pose2sim validation frames (0-49), every ordered same-person pair",
                "steps": str(args.steps), "batch_size": str(args.batch_size), "lr": str(args.lr)}
    with atomic_path(args.run / "finetuned.safetensors") as temporary:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(temporary), metadata=metadata)
    print(f"wrote {args.run / 'finetuned.safetensors'}")


if __name__ == "__main__":
    main()
