"""One error root for the CLI, and the problem record the loader reports."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


class YimatongError(Exception):
    """A failure the operator can act on; the CLI prints it as one line, without a traceback."""


@dataclass(frozen=True, order=True)
class Problem:
    """Something wrong with an input file: where (file, line, field) and what, in plain words."""

    file: str
    line: int | None
    field: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def at(self, file: str) -> Problem:
        return replace(self, file=file)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}" if self.field else ""
        return f"{where}:{field} {self.message}"
