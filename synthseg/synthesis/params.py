"""The random-parameter convention shared by every random step.

A number ``v`` means the symmetric range ``(centre - v, centre + v)``; a pair ``(a, b)`` is the
range itself; ``False`` (or ``None``) switches the step off. Ranges are validated once, at
construction, with a ``ValueError`` naming the parameter.
"""

from __future__ import annotations

from typing import Sequence

import torch

RangeSpec = float | int | Sequence[float] | bool | None


def to_range(value: RangeSpec, name: str, *, centre: float = 0.0, low: float | None = None,
             high: float | None = None) -> tuple[float, float] | None:
    """Normalise a range spec to ``(a, b)`` or ``None`` (off), checking it lies inside [low, high]."""
    if value is None or value is False:
        return None
    if value is True:
        raise ValueError(f"{name}: True is not a range; give a number, a pair or False")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name}: a single number is a half-width and must be >= 0, got {value}")
        bounds = (centre - float(value), centre + float(value))
    else:
        try:
            a, b = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number, a pair (min, max) or False, got {value!r}") from None
        if a > b:
            raise ValueError(f"{name}: range ({a}, {b}) has min > max")
        bounds = (a, b)
    if low is not None and bounds[0] < low:
        raise ValueError(f"{name}: range {bounds} goes below {low}")
    if high is not None and bounds[1] > high:
        raise ValueError(f"{name}: range {bounds} goes above {high}")
    return bounds


def check_probability(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: probability must lie in [0, 1], got {value}")
    return float(value)


def uniform(rng: torch.Generator, bounds: tuple[float, float] | None, size: Sequence[int] = (),
            off: float = 0.0) -> torch.Tensor:
    """Draw U(bounds) (a tensor of ``size``); ``off`` when the step is disabled."""
    if bounds is None:
        return torch.full(tuple(size), float(off))
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(tuple(size), generator=rng)


def chance(rng: torch.Generator, probability: float) -> bool:
    return bool(torch.rand((), generator=rng) < probability)
