"""Hyper-parameter specifications: what a model family accepts, with bounds and defaults.

Every family (``models.families``) declares its space as ``dict[str, ParamSpec]``.
The service-level validator (``scoring.services.hyperparams``) checks requests from
every entry point against these specs, and tuning draws from them, so one bound
lives in one place. ``ParamSpec.check`` is the rule: it returns the value in its
canonical JSON form or raises ``ParamError`` saying why.

Types:

- ``"int"`` / ``"float"``: a number within ``[low, high]`` (``log`` marks a scale on
  which tuning should sample; it does not change what is accepted).
- ``"choice"``: one of ``choices``.
- ``"int_list"``: a list of 1..``max_length`` ints, each within ``[low, high]``
  (layer widths, channel counts); a single int is accepted as a one-element list.
- ``"device"``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

``nullable``: ``None`` is accepted (the family then picks a value from the data).
``literals``: extra accepted values outside the type (``pos_weight="balanced"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

ParamType = Literal["int", "float", "choice", "int_list", "device"]
PARAM_TYPES: tuple[str, ...] = ("int", "float", "choice", "int_list", "device")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]{1,2})?)$")


class ParamError(ValueError):
    """A hyper-parameter value outside its declared space."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True)
class ParamSpec:
    """One hyper-parameter: its type, bounds, default and how tuning samples it."""

    name: str
    type: ParamType
    default: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    max_length: int | None = None
    nullable: bool = False
    literals: tuple[Any, ...] = ()
    help: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"{self.name}: unknown parameter type {self.type!r}")
        if self.type in ("int", "float", "int_list") and (self.low is None or self.high is None):
            raise ValueError(f"{self.name}: a {self.type} parameter needs low and high bounds")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice parameter needs choices")
        if self.type == "int_list" and not self.max_length:
            raise ValueError(f"{self.name}: an int_list parameter needs max_length")

    def _number(self, value: Any, integer: bool) -> int | float:
        # bool is an int to Python but never a sensible width or rate.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(self.name, f"must be a {'whole ' if integer else ''}number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(self.name, f"must be finite, got {value!r}")
        if integer:
            if isinstance(value, float) and not value.is_integer():
                raise ParamError(self.name, f"must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        assert self.low is not None and self.high is not None
        if not self.low <= value <= self.high:
            raise ParamError(self.name, f"must be within [{self.low:g}, {self.high:g}], got {value!r}")
        return value

    def check(self, value: Any) -> Any:
        """``value`` in canonical (JSON) form, or ``ParamError``."""
        if value is None:
            if self.nullable:
                return None
            raise ParamError(self.name, "may not be empty")
        if self.literals and isinstance(value, str):
            if value in self.literals:
                return value
            raise ParamError(self.name, f"must be a number or one of {list(self.literals)}, got {value!r}")
        if self.type == "int":
            return self._number(value, integer=True)
        if self.type == "float":
            return self._number(value, integer=False)
        if self.type == "choice":
            if value not in self.choices or isinstance(value, bool) != any(isinstance(c, bool) for c in self.choices):
                raise ParamError(self.name, f"must be one of {list(self.choices)}, got {value!r}")
            return value
        if self.type == "int_list":
            values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            if not isinstance(values, (list, tuple)) or not values:
                raise ParamError(self.name, f"must be a non-empty list of whole numbers, got {value!r}")
            assert self.max_length is not None
            if len(values) > self.max_length:
                raise ParamError(self.name, f"at most {self.max_length} entries, got {len(values)}")
            return [self._number(v, integer=True) for v in values]
        # device
        if not isinstance(value, str) or not _DEVICE.match(value):
            raise ParamError(self.name, f"must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON description (API schema pages, the portal's form hints)."""
        return {
            "name": self.name, "type": self.type, "default": self.default, "low": self.low, "high": self.high,
            "log": self.log, "choices": list(self.choices), "max_length": self.max_length,
            "nullable": self.nullable, "literals": list(self.literals), "help": self.help,
        }  # fmt: skip


def check_params(space: dict[str, ParamSpec], values: dict[str, Any]) -> dict[str, Any]:
    """Every value of ``values`` checked against ``space``; unknown names refused."""
    if not isinstance(values, dict):
        raise ParamError("hyperparameters", f"must be an object, got {type(values).__name__}")
    unknown = sorted(set(values) - set(space))
    if unknown:
        raise ParamError(unknown[0], f"unknown hyper-parameter (known: {', '.join(sorted(space))})")
    return {name: space[name].check(value) for name, value in values.items()}
