"""An exponential moving average of a network's weights, the weights a run validates and exports.

With one synthetic sample per step the weights at any single step carry that step's noise; their
running average over the last stretch of a run is a smoother estimate of where training was heading.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """``average ← d · average + (1 − d) · weights`` after every optimiser step, with
    ``d = min(decay, t / (t + 1))`` at the run's step ``t``: the plain mean of every step so far until it
    spans ``1 / (1 − decay)`` steps, then an exponential average over about that many (the weights a run
    started from drop out at its first step). Buffers (batch-norm statistics) are copied, not averaged."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.network = copy.deepcopy(model).requires_grad_(False).eval()

    def rate(self, step: int) -> float:
        """The decay applied after step ``step`` (0-based count of the run's previous steps)."""
        return min(self.decay, step / (step + 1))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        weight = 1.0 - self.rate(step)
        for average, current in zip(self.network.parameters(), model.parameters()):
            average.lerp_(current.detach(), weight)
        for average, current in zip(self.network.buffers(), model.buffers()):
            average.copy_(current)
