"""Entry point shared by ``recapture train`` and ``torchrun -m recapture train``.

Run folders: a new run writes to ``train.run_dir`` or, when that is empty, ``runs/<preset>-<timestamp>``.
A folder that already holds files is refused (continue it with ``--resume``); ``force`` renames it aside
to ``<folder>.replaced-<timestamp>`` first. Nothing of an earlier run is ever deleted.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from recapture.config import ExperimentConfig, load_config
from recapture.training.distributed import DistributedContext, cleanup_distributed, setup_distributed
from recapture.training.trainer import Trainer, TrainingError, TrainResult

#: Where runs go when ``train.run_dir`` is empty: ``runs/<preset>-<timestamp>``.
RUNS_ROOT = Path("runs")


def resolve_config(config_path: str | Path | None, overrides: list[str], resume: str | Path | None) -> ExperimentConfig:
    """The run's config: ``RUN/config.yaml`` when resuming without ``--config``, else the preset; overrides on top."""
    if config_path is None and resume is not None:
        config_path = Path(resume) / "config.yaml"
        if not config_path.is_file():
            raise TrainingError(f"cannot resume: {config_path} not found (is {resume} a run directory?)")
    config = load_config(config_path, overrides)
    if resume is not None:
        config = replace(config, train=replace(config.train, run_dir=str(resume)))
    return config


def default_run_dir(config_path: str | Path | None, stamp: str) -> Path:
    """``runs/<preset file stem>-<stamp>`` (``runs/defaults-<stamp>`` without a preset)."""
    preset = Path(config_path).stem if config_path is not None else "defaults"
    return RUNS_ROOT / f"{preset}-{stamp}"


def claim_run_dir(run_dir: str | Path, force: bool = False, stamp: str | None = None) -> tuple[Path, str | None]:
    """The folder a new run may write to, and a message when an old one was renamed aside.

    TrainingError when ``run_dir`` exists and is not empty, unless ``force``: then it is renamed to
    ``<run_dir>.replaced-<stamp>`` (never deleted).
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise TrainingError(f"run folder {path} is a file; give a folder with train.run_dir=PATH")
    if not path.exists() or not any(path.iterdir()):
        return path, None
    if not force:
        raise TrainingError(f"run folder {path} is not empty (an earlier run?): continue it with --resume {path}, "
                            f"or pass --force to start over (the old folder is renamed aside, not deleted)")
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.replaced-{stamp}")
    counter = 1
    while aside.exists():
        aside, counter = path.with_name(f"{path.name}.replaced-{stamp}-{counter}"), counter + 1
    os.replace(path, aside)
    return path, f"renamed the earlier run folder {path} to {aside}"


def _new_run_dir(config: ExperimentConfig, config_path: str | Path | None, force: bool,
                 context: DistributedContext, say: Callable[[str], None]) -> ExperimentConfig:
    """Rank 0 picks and claims the run folder; under torchrun the other ranks receive its answer."""
    answer: list[str | None] = [None, None]
    if context.is_main:
        try:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            wanted = config.train.run_dir or default_run_dir(config_path, stamp)
            path, message = claim_run_dir(wanted, force, stamp)
            answer = [str(path), None]
            if message:
                say(message)
        except TrainingError as err:
            answer = [None, str(err)]
    if context.distributed:
        torch.distributed.broadcast_object_list(answer, src=0)
    if answer[1] is not None:
        raise TrainingError(answer[1])
    return replace(config, train=replace(config.train, run_dir=str(answer[0])))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_training(config_path: str | Path | None, overrides: list[str] | None = None,
                 resume: str | Path | None = None, force: bool = False,
                 say: Callable[[str], None] = _stderr) -> TrainResult:
    """Train (or resume) in this process, joining a torchrun process group when launched by torchrun.

    ``say`` receives notices (an old run folder renamed aside, damaged checkpoints skipped on resume).
    """
    config = resolve_config(config_path, list(overrides or []), resume)
    context = setup_distributed(config.train.device)
    finished = False
    try:
        if resume is None:
            config = _new_run_dir(config, config_path, force, context, say)
        trainer = Trainer(config, config.train.run_dir, context)
        if resume is not None:
            checkpoint = trainer.resume(resume)
            for line in checkpoint.skipped if context.is_main else ():
                say(line)
        result = trainer.train()
        finished = True
        return result
    finally:
        cleanup_distributed(wait_for_peers=finished)
