"""Counts that add up: what happened to every input of a folder (kept, or skipped with a reason).

The data tools read folders of user files; none is dropped silently. Each input ends as kept or
as a skip with a short reason slug and a message, and ``seen == kept + sum(skipped.values())``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class InputError(ValueError):
    """A missing, empty or malformed input folder; str(e) is a one-line message."""


class Skipped(Exception):
    """One paired item that cannot be used; `reason` is a short slug for the report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Tally:
    """What happened to the inputs of one folder; seen == kept + sum(skipped.values()).

    An input is a meta.jsonl line (paired) or a photo file (unpaired); `written` counts the
    records it produced (one per triple, one per aligned face).
    """

    seen: int = 0
    kept: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_items: list[dict] = field(default_factory=list)

    def keep(self, records: int) -> None:
        self.seen, self.kept, self.written = self.seen + 1, self.kept + 1, self.written + records

    def skip(self, item: dict, reason: str, message: str) -> None:
        self.seen += 1
        self.skipped[reason] += 1
        self.skipped_items.append({**item, "reason": reason, "message": message})

    def as_dict(self) -> dict:
        return {"seen": self.seen, "kept": self.kept, "written": self.written,
                "skipped": dict(sorted(self.skipped.items())), "skipped_items": self.skipped_items}
