"""Entry point shared by ``recapture train`` and ``torchrun -m recapture train``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from recapture.config import ExperimentConfig, load_config
from recapture.training.distributed import cleanup_distributed, setup_distributed
from recapture.training.trainer import Trainer, TrainingError, TrainResult


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


def run_training(config_path: str | Path | None, overrides: list[str] | None = None,
                 resume: str | Path | None = None) -> TrainResult:
    """Train (or resume) in this process, joining a torchrun process group when launched by torchrun."""
    config = resolve_config(config_path, list(overrides or []), resume)
    context = setup_distributed(config.train.device)
    try:
        trainer = Trainer(config, config.train.run_dir, context)
        if resume is not None:
            trainer.resume(resume)
        return trainer.train()
    finally:
        cleanup_distributed()
