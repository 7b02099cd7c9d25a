"""Device selection shared by training and inference: ``auto | cpu | cuda[:N] | mps``."""

from __future__ import annotations

import torch

from synthseg.errors import SynthSegError


def resolve_device(spec: str = "auto") -> torch.device:
    """The requested device, or the best available one for ``auto``; unavailable devices are an error."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise SynthSegError(f"unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SynthSegError(f"device '{spec}' requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SynthSegError(f"device '{spec}' requested but only {torch.cuda.device_count()} GPU(s) exist")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SynthSegError("device 'mps' requested but MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise SynthSegError(f"unsupported device '{spec}'")
    return device
