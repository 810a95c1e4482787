"""Training speed: iterations/s and images/s of the synthetic and deepfashion presets (batch as in the
preset, or --batch), peak memory. On a CUDA machine also the deepfashion preset at 256x176 with bf16.

    python benchmarks/train_speed.py --json train_speed.json [--steps 5] [--threads 2]

Data are random tensors of the right shapes (the data pipeline is not what is measured here); every
iteration is a full D phase + G phase as in training. VGG19 is off (perceptual_weight=0) unless its
weights are present, since none are available offline.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from recapture.config import ExperimentConfig, load_config
from recapture.data.dataset import PairBatch
from recapture.models.perceptual import find_vgg_weights
from recapture.training.distributed import DistributedContext
from recapture.training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class RandomPairs(torch.utils.data.Dataset):
    """Shape-correct random pairs; only the trainer's step is timed."""

    def __init__(self, config: ExperimentConfig, length: int) -> None:
        from recapture.body.parts import get_label_set

        self.label_set = get_label_set(config.model.label_set)
        self.size = tuple(config.model.image_size)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        del epoch


def random_batch(config: ExperimentConfig, batch: int, device: torch.device) -> PairBatch:
    from recapture.body.parts import get_label_set

    parts = get_label_set(config.model.label_set).num_parts
    height, width = config.model.image_size
    labels = torch.randint(0, parts, (2, batch, height // 8, width // 8))
    labels = torch.nn.functional.interpolate(labels.float(), size=(height, width), mode="nearest").long()
    hot = torch.nn.functional.one_hot(labels, parts).permute(0, 1, 4, 2, 3).float()
    pose = (torch.rand(2, batch, 18, height, width) > 0.995).float()
    image = torch.rand(2, batch, 3, height, width) * 2 - 1
    keypoints = torch.rand(2, batch, 18, 2) * height
    mask = torch.ones(2, batch, height, width)
    names = tuple(f"x{i}" for i in range(batch))
    return PairBatch(image[0], image[1], hot[0], hot[1], pose[0], pose[1], keypoints[0], keypoints[1], mask[0],
                     mask[1], names, names).to(device)


def measure(preset: str, steps: int, batch: int | None, device: torch.device, bf16: bool) -> dict[str, float | str]:
    overrides = ["data.manifest=unused", f"train.bf16={str(bf16).lower()}", "train.teacher_forcing=true"]
    overrides += [f"train.batch_size={batch}"] if batch else []
    config = load_config(CONFIGS / f"{preset}.yaml", overrides)
    if config.loss.perceptual_weight and find_vgg_weights(config.loss) is None:
        config = load_config(CONFIGS / f"{preset}.yaml", overrides + ["loss.perceptual_weight=0"])
    batch = batch or config.train.batch_size
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=device)
    trainer = Trainer(config, "/tmp/recapture-train-speed", context, dataset=RandomPairs(config, batch * 4))
    data = random_batch(config, batch, device)
    trainer.train_step(data)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(data)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    result: dict[str, float | str] = {"preset": preset, "device": str(device), "batch": batch, "bf16": bf16,
                                      "size": "x".join(map(str, config.model.image_size)),
                                      "seconds_per_iteration": seconds, "iterations_per_s": 1 / seconds,
                                      "images_per_s": batch / seconds}
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--presets", nargs="+", default=["synthetic", "deepfashion"])
    parser.add_argument("--batch", type=int, default=None, help="override the presets' batch size")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [measure(p, args.steps, args.batch, torch.device("cpu"), False) for p in args.presets]
    if torch.cuda.is_available():
        results.append(measure("deepfashion", args.steps, args.batch, torch.device("cuda"), True))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'preset':<12} {'device':<8} {'size':<8} {'batch':>5} {'it/s':>8} {'img/s':>8}")
    for r in results:
        print(f"{r['preset']:<12} {r['device']:<8} {r['size']:<8} {r['batch']:>5} {r['iterations_per_s']:>8.3f} "
              f"{r['images_per_s']:>8.2f}")
    print(f"peak RSS {peak:.0f} MB, torch threads {torch.get_num_threads()}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "peak_rss_mb": peak,
                                         "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
