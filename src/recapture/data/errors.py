"""The one error type of the data layer: a file that does not follow its documented format.

Both the readers in :mod:`recapture.data.formats` and the manifest in :mod:`recapture.data.manifest` raise it,
so neither imports the other for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class FormatError(ValueError):
    """A file does not follow its documented format; the message names file, line and field.

    ``FormatError(path, message, line, field)``; ``FormatError(text)`` alone keeps ``text`` as the whole
    message (how pickling and DataLoader workers rebuild exceptions).
    """

    def __init__(self, path: str | Path | None, message: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        if message is None:
            text, path = str(path), None
        else:
            where = str(path) if path is not None else "<memory>"
            where += "" if line is None else f", line {line}"
            where += "" if field is None else f", field {field!r}"
            text = f"{where}: {message}"
        super().__init__(text)
        self.path = None if path is None else Path(path)
        self.message = message
        self.line = line
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        if self.message is None:
            return (FormatError, (self.args[0],))
        return (FormatError, (self.path, self.message, self.line, self.field))
