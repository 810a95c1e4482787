"""Training speed of the correspondence appearance network (the issue's budget: >= 4 training images/s at batch 8
on the 2-core CPU, learned parts at 128x88).

Measured on real pairs, in one run: (1) the training step alone (D step + G step with every loss of
``configs/correspondence-mix.yaml``: L1, Inception ``conv_2`` perceptual, flow, visibility, painted pixels,
adversarial D2/D3) on pre-made batches, at 1 and 2 torch threads; (2) making the pairs (CCP self-supervised,
reversed and SynthHumans pose changes in the preset's mix) on one core, as the DataLoader worker does;
(3) the training loop as run (``PairStream`` in one worker process, the step on one thread): images/s is what
``recapture.training.correspondence`` logs. Writes ``benchmarks/results/correspondence-train-speed.{json,md}``.

    .venv/bin/python benchmarks/correspondence_train_speed.py [--steps 12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pose2sim import save_results
from recapture.data.ccp_pairs import CcpPhotos, training_ids
from recapture.models.correspondence import CorrespondenceConfig
from recapture.training.correspondence import Perceptual, Trainer, load_settings
from recapture.training.correspondence_data import PairStream, batch_loader, make_batch
from recapture.training.parsed_photos import ParsedLayouts

PRESET = "configs/correspondence-mix.yaml"


def timed_steps(trainer: Trainer, batches: list, steps: int) -> float:
    """Seconds per step over ``steps`` steps (after one warm-up step)."""
    trainer.train_step(batches[0])
    started = time.perf_counter()
    for index in range(steps):
        trainer.train_step(batches[index % len(batches)])
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    settings = load_settings(PRESET)
    config = CorrespondenceConfig()
    photos = CcpPhotos.load(settings.photos)
    position = {int(i): n for n, i in enumerate(photos.ids)}
    rows = np.array([position[i] for i in training_ids()[0] if i in position])
    parsed = ParsedLayouts.load(settings.parsed).for_photos(photos) if settings.parsed else None
    rng = np.random.default_rng(0)
    torch.set_num_threads(1)
    started = time.perf_counter()
    batches = [make_batch(photos, rng.choice(rows, settings.batch_size), rng, config, settings.true_layout_fraction,
                           settings.mix(), parsed) for _ in range(4)]
    making = (time.perf_counter() - started) / len(batches)
    result: dict = {"preset": PRESET, "batch": settings.batch_size, "internal_size": list(config.internal_size),
                    "output_size": list(batches[0].target_image.shape[-2:]), "pairs_per_s_making_one_core":
                    settings.batch_size / making, "step": {}}
    trainer = Trainer(config, settings, Perceptual())
    for threads in (1, 2):
        torch.set_num_threads(threads)
        seconds = timed_steps(trainer, batches, args.steps)
        result["step"][str(threads)] = {"seconds_per_step": seconds, "images_per_s": settings.batch_size / seconds}
    torch.set_num_threads(1)
    stream = PairStream(photos, rows, parsed, config, settings.batch_size, settings.true_layout_fraction,
                        settings.mix(), settings.seed, 0)
    loader = iter(batch_loader(stream, 1))
    trainer.train_step(next(loader))
    started = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(next(loader))
    loop = (time.perf_counter() - started) / args.steps
    result["loop_one_worker_one_thread"] = {"seconds_per_step": loop, "images_per_s": settings.batch_size / loop}
    lines = ["# Correspondence training speed (2-core CPU)", "",
             f"Preset `{PRESET}`, batch {settings.batch_size}, learned parts at "
             f"{config.internal_size[0]}x{config.internal_size[1]}, images at "
             f"{result['output_size'][0]}x{result['output_size'][1]}; {args.steps} steps each.", "",
             "| what | s / step | images/s |", "|---|---|---|"]
    for threads, row in result["step"].items():
        lines.append(f"| training step alone, {threads} torch thread(s) | {row['seconds_per_step']:.3f} "
                     f"| {row['images_per_s']:.2f} |")
    row = result["loop_one_worker_one_thread"]
    lines.append(f"| training loop as run (pairs made in 1 worker, step on 1 thread) | {row['seconds_per_step']:.3f} "
                 f"| {row['images_per_s']:.2f} |")
    lines.append(f"| making pairs alone, one core | {settings.batch_size / result['pairs_per_s_making_one_core']:.3f} "
                 f"| {result['pairs_per_s_making_one_core']:.2f} |")
    save_results("correspondence-train-speed", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
