"""Device selection shared by training and inference: ``auto | cpu | cuda[:N] | mps``."""

from __future__ import annotations

import functools

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


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16). Only then is bf16 autocast
    faster than fp32 on the CPU (measured: 2.3x faster training steps with AMX; 20-150x slower on
    AVX2-only CPUs, which emulate it)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return ("amx_bf16" in flags or "avx512_bf16" in flags) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


AMP_MODES = ("auto", "off", "bf16", "fp16")  # the values of every ``amp`` setting (config, CLI, benchmarks)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` setting (auto | off | bf16 | fp16) on ``device``; None = fp32."""
    if amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and native_bf16_cpu():
        return torch.bfloat16
    return None


def retain_freed_memory() -> bool:
    """Have glibc keep freed memory in the process instead of returning it to the OS.

    PyTorch's CPU kernels allocate and free blocks of tens of MB in every layer. With glibc's defaults
    each such block is a fresh ``mmap`` whose pages fault in, zero-filled, on first touch: ≈ 230,000
    page faults and 0.55 s of system time per 96³ training step on this project's CPU; reusing them
    from the heap, never trimmed, makes the step 0.80× as long (``benchmarks/training_step.py``) and a
    1 mm 256³ segmentation 0.71× (``benchmarks/inference_speed.py``), at ≈ 0.9 GB more peak memory there
    (freed blocks stay and fragment). Changes the whole process, so the command-line front end calls it,
    not the library.
    Returns False where the C library is not glibc."""
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameter numbers from glibc's malloc.h
    mallopt = glibc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2 ** 31 - 1))


@functools.lru_cache(maxsize=None)
def glibc_function(name: str):
    """A function of the C library (ctypes), or None where the C library lacks it (not glibc, or an older one)."""
    import ctypes
    import ctypes.util

    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
