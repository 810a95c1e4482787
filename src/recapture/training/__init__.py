"""Training loop, checkpoints and distributed glue."""
