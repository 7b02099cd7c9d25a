"""synthseg: contrast-agnostic whole-head segmentation into 16 structures.

The heavy parts (torch, MONAI) load on first use, so ``import synthseg`` stays instant.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Segmenter", "SegmentationResult", "segment", "SynthSegError", "__version__"]

from synthseg.errors import SynthSegError


def __getattr__(name: str):
    if name in ("Segmenter", "segment"):
        from synthseg.inference import segmenter

        return getattr(segmenter, name)
    if name == "SegmentationResult":
        from synthseg.inference.result import SegmentationResult

        return SegmentationResult
    raise AttributeError(f"module 'synthseg' has no attribute {name!r}")
