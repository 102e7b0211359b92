"""Run config of the ML assets: split boundaries (validated, strictly ordered) and profile minimums."""

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import pydantic

from f1_assets.transforms.profiles import param_fields

SPLITS = ("train", "validation", "test")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class SplitConfig(dg.Config):
    """Split boundaries (inclusive ISO dates): train <= train_end, validation_start <= validation <=
    validation_end, test >= test_start. Must satisfy train_end < validation_start <= validation_end
    < test_start."""

    train_end: str = "2022-12-31"
    validation_start: str = "2023-01-01"
    validation_end: str = "2023-06-30"
    test_start: str = "2023-07-01"


def parse_date(name: str, value: Any) -> date:
    """A strict `YYYY-MM-DD` calendar date, or ValueError naming the field."""
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"{name}={value!r}: expected an ISO date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r}: not a calendar date ({exc})") from exc


@dataclass(frozen=True)
class SplitBounds:
    train_end: date
    validation_start: date
    validation_end: date
    test_start: date

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "SplitBounds":
        b = cls(**{f: parse_date(f, values[f]) for f in ("train_end", "validation_start", "validation_end",
                                                         "test_start")})
        if not (b.train_end < b.validation_start <= b.validation_end < b.test_start):
            raise ValueError(f"split boundaries must satisfy train_end < validation_start <= validation_end < "
                             f"test_start, got {b.as_dict()}")
        return b

    @classmethod
    def from_config(cls, config: SplitConfig) -> "SplitBounds":
        return cls.from_values(config.model_dump())

    def ranges(self) -> dict[str, tuple[date | None, date | None]]:
        """Inclusive (lower, upper) per split; None = open."""
        return {"train": (None, self.train_end), "validation": (self.validation_start, self.validation_end),
                "test": (self.test_start, None)}

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in self.__dict__.items()}


# Minimum data per score: the fields, types and defaults of `transforms.profiles.ProfileParams`, as run
# config (built from the dataclass so they are written once).
ProfileConfig = pydantic.create_model("ProfileConfig", __base__=dg.Config, **param_fields())
ProfileConfig.__doc__ = "Minimum data per score (see `f1_assets.transforms.profiles.ProfileParams`)."
