"""How much memory a segmentation needs, and how much this process may still take.

A scan too large for the machine should cost its user one clear line, not the kernel's out-of-memory
killer (which takes a whole batch with it, without a word). :class:`~synthseg.inference.segmenter.Segmenter`
marks where it starts (:func:`memory_mark`) and, once it knows the head crop, compares :func:`memory_needed` with
:func:`room_since` that mark: when test-time
augmentation would not fit but one pass would, the scan gets one pass and a warning; when not even that fits,
it is refused before the network runs.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from synthseg.device import glibc_function

# Memory a segmentation takes beyond the loaded model: an upper envelope of `synthseg segment`'s peaks on IXI012
# made large both ways (benchmarks/RESULTS.md, "Memory of large scans": up to 1 GB above them; the peaks of large
# crops themselves vary by 0.5 GB from run to run), per voxel of the scan (reading, reorientation, anti-aliasing,
# the return to the scan's grid; written probabilities) and per voxel of the head crop on the finest working grid
# (the probabilities of every grid and pass).
BYTES_PER_SCAN_VOXEL = {True: 26, False: 20}  # with / without test-time augmentation (two anti-aliased copies)
BYTES_PER_POSTERIOR_VOXEL = 20
BYTES_PER_CROP_VOXEL = {True: 430, False: 340}
WORKSPACE_BYTES = 0.4e9  # the network's activations and torch's workspace
NO_LIMIT = 2 ** 60  # cgroup files write "max" (v2) or a page-rounded 2^63 (v1) for "unlimited"


def memory_needed(scan_voxels: float, crop_voxels: float, tta: bool, posteriors: bool = False) -> float:
    """Bytes a segmentation is expected to take beyond the loaded model: a scan (or output grid) of ``scan_voxels``
    whose head crop holds ``crop_voxels`` on the finest working grid."""
    per_scan_voxel = BYTES_PER_SCAN_VOXEL[tta] + (BYTES_PER_POSTERIOR_VOXEL if posteriors else 0)
    return WORKSPACE_BYTES + per_scan_voxel * scan_voxels + BYTES_PER_CROP_VOXEL[tta] * crop_voxels


def memory_mark() -> tuple[float, float]:
    """This process's resident memory and the free memory its allocator holds for reuse, now."""
    return _resident(), _heap_free()


def room_since(mark: tuple[float, float]) -> float | None:
    """Bytes a computation that started at ``mark`` may take in all: what it already holds, what the allocator
    held for reuse then (``synthseg segment`` keeps freed memory, :func:`synthseg.device.retain_freed_memory`) and
    what the system can still give; ``None`` where the system does not say."""
    free = available_memory()
    if free is None:
        return None
    return free + max(0.0, _resident() - mark[0]) + mark[1]


def available_memory(proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Bytes this process may still take: the kernel's ``MemAvailable``, capped by the memory limit of every
    cgroup above the process (a container, a batch-system job) less what that cgroup holds beyond
    reclaimable file cache; ``None`` where the system does not say (not Linux)."""
    free = _meminfo_available(proc / "meminfo")
    for folder in _cgroup_folders(proc / "self" / "cgroup", cgroup_root):
        room = _cgroup_room(folder)
        if room is not None:
            free = room if free is None else min(free, room)
    return free


def _meminfo_available(path: Path) -> float | None:
    kib = _field(path, "MemAvailable:")
    return None if kib is None else kib * 1024


def _cgroup_folders(membership: Path, root: Path) -> list[Path]:
    """The memory-controller folders of the process's cgroup and of each cgroup above it (v2 and v1)."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if number == "0" and controllers == "":
            base = root  # cgroup v2: one unified hierarchy
        elif "memory" in controllers.split(","):
            base = root / "memory"
        else:
            continue
        parts = [p for p in path.strip().split("/") if p]
        folders += [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return folders


def _cgroup_room(folder: Path) -> float | None:
    """A cgroup's limit less its usage (page cache it can reclaim counted as free), or None without a limit."""
    for limit_name, usage_name, cache_key in (("memory.max", "memory.current", "inactive_file"),
                                              ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                               "total_inactive_file")):
        limit, usage = _read_number(folder / limit_name), _read_number(folder / usage_name)
        if limit is None or usage is None:
            continue
        if limit >= NO_LIMIT:
            return None
        cache = _field(folder / "memory.stat", cache_key) or 0.0
        return max(0.0, limit - usage + cache)
    return None


def _read_number(path: Path) -> float | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return float(NO_LIMIT)
    try:
        return float(text)
    except ValueError:
        return None


def _field(path: Path, key: str) -> float | None:
    """The number after ``key`` on its line of a ``key value [unit]`` file (/proc/meminfo, memory.stat)."""
    try:
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) > 1 and words[0] == key:
                return float(words[1])
    except (OSError, ValueError):
        return None
    return None


def _resident(proc: Path = Path("/proc")) -> float:
    """This process's resident memory in bytes (0 where /proc does not say)."""
    try:
        return float((proc / "self" / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _heap_free() -> float:
    """Free bytes glibc's allocator holds for reuse (``mallinfo2().fordblks``; 0 elsewhere)."""
    mallinfo2 = glibc_function("mallinfo2")
    if mallinfo2 is None:
        return 0.0
    mallinfo2.restype = _MallInfo2
    return float(mallinfo2().fordblks)

