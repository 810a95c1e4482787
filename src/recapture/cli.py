"""The ``recapture`` command line: thin Typer commands that call the library."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Recapture: re-shoot a portrait with a new pose, figure or clothing.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and validate datasets.")
app.add_typer(data_app, name="data")


@app.callback()
def main() -> None:
    """Recapture command line."""


if __name__ == "__main__":
    app()
