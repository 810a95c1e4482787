"""Run logging: TensorBoard scalars and image grids, a console progress bar with ETA and loss terms.

Only rank 0 logs; other ranks get a :class:`RunLogger` that does nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from recapture.body.parts import LabelSet


def layout_to_rgb(layout: torch.Tensor, label_set: LabelSet) -> torch.Tensor:
    """``(B, N, H, W)`` scores or one-hot -> ``(B, 3, H, W)`` palette colours in [0, 1]."""
    palette = torch.tensor(label_set.palette, dtype=torch.float32, device=layout.device) / 255.0
    labels = layout.argmax(dim=1)
    return palette[labels].permute(0, 3, 1, 2)


def pose_to_rgb(pose: torch.Tensor) -> torch.Tensor:
    """``(B, 18, H, W)`` heatmaps -> ``(B, 3, H, W)`` white joints on black in [0, 1]."""
    return pose.amax(dim=1, keepdim=True).clamp(0, 1).expand(-1, 3, -1, -1)


def image_grid(columns: list[torch.Tensor], max_rows: int = 4) -> torch.Tensor:
    """Stack ``(B, 3, H, W)`` tensors in [0, 1] side by side, one row per sample: ``(3, rows*H, cols*W)``."""
    rows = [torch.cat([c[i].detach().float().cpu() for c in columns], dim=2)
            for i in range(min(max_rows, columns[0].shape[0]))]
    return torch.cat(rows, dim=1).clamp(0, 1)


class RunLogger:
    """TensorBoard + progress bar for rank 0; a no-op elsewhere."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        self.progress: Progress | None = None
        self.start_time = time.monotonic()
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.description}"), transient=False)
        self.task = self.progress.add_task("", total=total_steps, completed=start_step)
        self.progress.start()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None or self.progress is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        shown = " ".join(f"{k.split('/')[-1]}={v:.3f}" for k, v in values.items())
        self.progress.update(self.task, description=shown)
        if not self.progress.console.is_terminal:
            task = self.progress.tasks[0]
            eta = task.time_remaining
            self.progress.console.print(f"step {step}/{task.total:.0f} elapsed {time.monotonic() - self.start_time:.0f}s "
                                        f"eta {eta if eta is None else round(eta)}s {shown}")

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step)

    def image(self, step: int, tag: str, grid: torch.Tensor) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, grid, step)

    def text(self, tag: str, body: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, body)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def to_unit(image: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (image.detach().float() + 1.0) / 2.0


def save_png(path: Path, grid: torch.Tensor) -> None:
    """Write a ``(3, H, W)`` [0, 1] tensor as PNG."""
    from PIL import Image

    array = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    Image.fromarray(array).save(path)
