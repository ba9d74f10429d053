"""Ranges of values that a setting and a request field share (the animator's fps, a sampling
temperature...), so the config that sets a default and the servicer that checks a request agree."""

from __future__ import annotations

import dataclasses

from services.common.errors import InvalidArgument


@dataclasses.dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    open_lo: bool = False  # lo itself excluded: (lo, hi]

    def __contains__(self, value: float) -> bool:
        return (self.lo < value if self.open_lo else self.lo <= value) and value <= self.hi

    def __str__(self) -> str:
        return f"({self.lo:g}, {self.hi:g}]" if self.open_lo else f"{self.lo:g}..{self.hi:g}"

    def check(self, field: str, value: float, unit: str = "", note: str = "") -> None:
        """Refuses a request field outside the range: INVALID_ARGUMENT naming the field."""
        if value not in self:
            raise InvalidArgument(f"{field}: {value:g}{unit} is outside {self}{note}")


FPS = Range(1, 60)
SAMPLE_RATE = Range(8000, 48000)
JPEG_QUALITY = Range(1, 100)
TEMPERATURE = Range(0, 2)
TOP_P = Range(0, 1, open_lo=True)
SPEAKING_RATE = Range(0.25, 4)
