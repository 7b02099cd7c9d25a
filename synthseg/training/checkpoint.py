"""Checkpoints: atomic writes, keep-last-K pruning, and finding the newest intact one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from synthseg.io.image import write_atomic

PATTERN = re.compile(r"step_(\d+)\.pt$")


def save_checkpoint(state: dict, folder: Path, step: int, keep_last: int) -> Path:
    """Write ``step_<N>.pt`` atomically (a kill mid-write leaves the previous ones intact), then prune."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    write_atomic(path, lambda tmp: torch.save(state, tmp))
    for old in list_checkpoints(folder)[:-keep_last]:
        old.unlink(missing_ok=True)
    for stale in folder.glob(".*.tmp*"):  # leftovers of a write that was killed
        stale.unlink(missing_ok=True)
    return path


def mark_best(path: Path) -> Path:
    best = path.parent / "best.pt"
    write_atomic(best, lambda tmp: shutil.copyfile(path, tmp))
    return best


def list_checkpoints(folder: Path) -> list[Path]:
    found = [p for p in Path(folder).glob("step_*.pt") if PATTERN.search(p.name)]
    return sorted(found, key=lambda p: int(PATTERN.search(p.name).group(1)))


def load_latest(folder: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint that loads; unreadable ones (e.g. truncated) are skipped."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return torch.load(path, map_location="cpu", weights_only=False), path
        except Exception:  # a damaged file: fall back to the previous one
            continue
    return None
