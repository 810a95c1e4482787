"""Speed and size of the Recapture networks (CPU by default).

    python benchmarks/model_speed.py --json OUT.json [--device cpu|cuda] [--repeats 5] [--threads N]

Measures the DeepFashion-preset generator (geometric + appearance networks): parameters, GFLOPs at
256x176 batch 1 (``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per multiply-add;
GFLOPs = counted FLOPs / 1e9), latency at 256x176 batch 1 and (Market preset) 128x64 batch 8, and SAT
against its dense masked form at 64x64, C=128, 20 parts, on blob-like random layouts (same inputs).
Latencies are medians of ``--repeats`` runs after one warm-up, in eval mode without autograd.
Targets: generator <= 125 GFLOPs at 256x176; SAT >= 5x faster than the dense form.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from recapture.body.keypoints import NUM_KEYPOINTS
from recapture.body.parts import get_label_set
from recapture.config import ModelConfig, load_config
from recapture.models.discriminators import Discriminators
from recapture.models.generator import RecaptureGenerator
from recapture.models.layout_ops import blob_labels, to_one_hot
from recapture.models.sat import SemanticAttentiveTransfer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class SpeedReport:
    device: str
    threads: int
    params: int
    params_geometric: int
    params_discriminators: int
    gflops_256x176: float
    gflops_geometric_256x176: float
    latency_ms_256x176_b1: float
    latency_ms_128x64_b8: float
    sat_ms_64x64_c128: float
    sat_dense_ms_64x64_c128: float
    sat_speedup: float
    sat_ms_64x64_c128_half_background: float
    sat_dense_ms_64x64_c128_half_background: float
    peak_rss_mb: float


def _median_ms(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    def synced() -> None:
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    synced()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        synced()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _inputs(config: ModelConfig, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    num_parts = get_label_set(config.label_set).num_parts
    height, width = config.image_size
    image = torch.rand(batch, 3, height, width, generator=generator) * 2 - 1
    layout = to_one_hot(blob_labels(batch, num_parts, (height, width), generator), num_parts)
    poses = (torch.rand(2, batch, NUM_KEYPOINTS, height, width, generator=generator) > 0.99).float()
    return tuple(t.to(device) for t in (image, layout, poses[0], poses[1]))


def _gflops(run: Callable[[], object]) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 1e9


def _latency(config: ModelConfig, batch: int, device: torch.device, repeats: int) -> float:
    model = RecaptureGenerator(config).to(device).eval()
    inputs = _inputs(config, batch, device)
    with torch.no_grad():
        return _median_ms(lambda: model(*inputs), repeats, device)


def _sat_numbers(device: torch.device, repeats: int, half_background: bool) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(1)
    size, channels, parts = (64, 64), 128, 20
    sat = SemanticAttentiveTransfer(channels, channels, 64).to(device).eval()
    decoder_feature, encoder_feature = torch.randn(2, 1, channels, *size, generator=generator).to(device)
    labels = blob_labels(2, parts - 1, size, generator) + 1
    if half_background:
        labels[:, :, : size[1] // 2] = 0
    source_labels, target_labels = labels[:1].to(device), labels[1:].to(device)
    with torch.no_grad():
        sparse = _median_ms(lambda: sat(decoder_feature, encoder_feature, source_labels, target_labels),
                            repeats, device)
        dense = _median_ms(lambda: sat(decoder_feature, encoder_feature, source_labels, target_labels, dense=True),
                           repeats, device)
    return sparse, dense


def measure(device: torch.device, repeats: int) -> SpeedReport:
    deepfashion = load_config(CONFIGS / "deepfashion.yaml").model
    market = load_config(CONFIGS / "market.yaml").model
    model = RecaptureGenerator(deepfashion).to(device).eval()
    image, layout, source_pose, target_pose = _inputs(deepfashion, 1, device)
    sat, dense = _sat_numbers(device, repeats, half_background=False)
    sat_bg, dense_bg = _sat_numbers(device, repeats, half_background=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return SpeedReport(
        device=f"{device.type}: {name}", threads=torch.get_num_threads(),
        params=sum(p.numel() for p in model.parameters()),
        params_geometric=sum(p.numel() for p in model.geometric.parameters()),
        params_discriminators=sum(p.numel() for p in Discriminators(deepfashion).parameters()),
        gflops_256x176=_gflops(lambda: model(image, layout, source_pose, target_pose)),
        gflops_geometric_256x176=_gflops(lambda: model.geometric(layout, source_pose, target_pose)),
        latency_ms_256x176_b1=_latency(deepfashion, 1, device, repeats),
        latency_ms_128x64_b8=_latency(market, 8, device, repeats),
        sat_ms_64x64_c128=sat, sat_dense_ms_64x64_c128=dense, sat_speedup=dense / sat,
        sat_ms_64x64_c128_half_background=sat_bg, sat_dense_ms_64x64_c128_half_background=dense_bg,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the numbers to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="intra-op CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = measure(torch.device(args.device), args.repeats)
    for key, value in asdict(report).items():
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<42} {shown}")
    print("(GFLOPs as counted by FlopCounterMode: 2 FLOPs per multiply-add)")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
