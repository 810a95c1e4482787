"""``python -m recapture`` (and ``torchrun -m recapture``) runs the command line."""

from recapture.cli import app

if __name__ == "__main__":
    app()
