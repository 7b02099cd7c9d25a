"""Checkpoints: atomic writes, keep-last-K pruning, finding the newest intact one, and averaging runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Sequence

import torch

from synthseg.errors import SynthSegError
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


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint's state (weights and config at least), or a one-line error naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise SynthSegError(f"not a synthseg training checkpoint ({error})", path) from None
    if not isinstance(state, dict) or not {"model", "config"} <= state.keys():
        raise SynthSegError("not a synthseg training checkpoint (it holds no weights and config)", path)
    return state


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


# what a training state holds beyond the weights and how they were made: an average is no point of one run to resume
TRAINING_STATE = ("optimizer", "scheduler", "generator_rng", "torch_rng", "numpy_rng", "python_rng")


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write the uniform average of the network weights of training checkpoints to ``out``, for ``synthseg export``.

    Runs continued side by side from one network stay close to one another, so their mean is itself a working
    network that evens out the luck of each run's draws (a "model soup"). The checkpoints must train one network
    on one working grid; the average keeps the last one's config, step counts and validation history, lists every
    source under ``"averaged_from"`` (which the export copies into the model card) and drops the optimiser and
    random states: it is not a point of one run that training could resume from."""
    if len(paths) < 2:
        raise SynthSegError(f"averaging needs at least two checkpoints, got {len(paths)}")
    states, sources, shared = [], [], None
    for path in map(Path, paths):
        state = read_checkpoint(path)
        network_and_grid = _network_and_grid(state)
        if shared is not None and network_and_grid != shared:
            raise SynthSegError("trains another network or on another working grid than the first checkpoint", path)
        shared = network_and_grid
        states.append(state)
        sources.append({"checkpoint": str(path), "step": int(state["step"]), "seed": state["config"]["loop"]["seed"],
                        "total_steps": int(state.get("steps_before", 0)) + int(state["step"])})
    averaged = {k: (sum(s["model"][k].float() for s in states) / len(states)).to(v.dtype) if v.is_floating_point()
                else v for k, v in states[-1]["model"].items()}
    result = {k: v for k, v in states[-1].items() if k not in TRAINING_STATE}
    result.update(model=averaged, averaged_from=sources)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: torch.save(result, tmp))
    return out


def _network_and_grid(state: dict) -> tuple:
    """What checkpoints must share for their average to mean anything: weight names and shapes, working spacing."""
    return {k: tuple(v.shape) for k, v in state["model"].items()}, state["config"]["generator"]["spacing"]
