"""Helpers shared by the benchmark scripts: peak memory, the shared data folder, timing."""

from __future__ import annotations

import platform
import resource
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def dev_scans() -> list[Path]:
    """Every scan of ``dev/`` (reference label maps and masks left out), sorted."""
    return sorted(p for p in (SHARED / "dev").rglob("*") if p.name.endswith((".nii.gz", ".mgz"))
                  and not any(k in p.name for k in ("DLMUSE", "aseg", "Mask")))


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def machine() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, python {platform.python_version()}")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def header(title: str) -> None:
    print(f"# {title}\n# {time.strftime('%Y-%m-%d %H:%M')} | {machine()}\n# command: python {' '.join(sys.argv)}")
