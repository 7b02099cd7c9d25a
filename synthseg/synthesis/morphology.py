"""Local morphology: constrained growth of one group of structures into a neighbouring group.

All operations are maximum-filter steps on the label grid (one step = one voxel along a face, so a
boundary never moves farther than ``steps`` voxels), so they run on any device. Labels are
generation-label *indices* (uint8: 1 byte per voxel keeps these memory-bound passes cheap); groups
are given by target ids so a rule reads like anatomy ("cortex grows into CSF by 2 voxels").
"""

from __future__ import annotations

import torch

CORTEX, WM, CSF, DURA = (1,), (2,), (3,), (13,)
NUCLEI = (6, 7, 8, 9, 10)
# boundary rules of the generator: name → (group that grows for positive steps, the other group)
RULES = {"cortex_csf": (CORTEX, CSF), "cortex_wm": (CORTEX, WM), "nuclei_wm": (NUCLEI, WM), "dura_csf": (DURA, CSF)}


def _in(targets: torch.Tensor, group: tuple[int, ...]) -> torch.Tensor:
    mask = targets == group[0]
    for target in group[1:]:
        mask |= targets == target
    return mask


def max_filter(volume: torch.Tensor) -> torch.Tensor:
    """Maximum over each voxel and its 6 face neighbours (a one-voxel "cross" dilation);
    zero padding is neutral for codes >= 0."""
    out = volume
    for axis in range(3):
        n = volume.shape[axis]
        edge = list(volume.shape)
        edge[axis] = 1
        zero = volume.new_zeros(edge)
        padded = torch.cat([zero, volume, zero], dim=axis)
        out = torch.maximum(out, torch.maximum(padded.narrow(axis, 0, n), padded.narrow(axis, 2, n)))
    return out


def _spread(codes: torch.Tensor, allowed: torch.Tensor, steps: int) -> torch.Tensor:
    """Propagate positive codes into ``allowed`` voxels (code 0 = empty), one voxel per step."""
    for _ in range(steps):
        pooled = max_filter(codes)
        codes = torch.where((codes == 0) & allowed & (pooled > 0), pooled, codes)
    return codes


def grow(labels: torch.Tensor, targets: torch.Tensor, source: tuple[int, ...], into: tuple[int, ...],
         steps: int) -> torch.Tensor:
    """Voxels of ``into`` within ``steps`` voxels of ``source`` take the label of the nearby source voxel."""
    if steps <= 0:
        return labels
    src = _in(targets, source)
    codes = torch.where(src, labels + 1, torch.zeros((), dtype=labels.dtype, device=labels.device))
    codes = _spread(codes, _in(targets, into), steps)
    grown = (codes > 0) & ~src
    return torch.where(grown, codes - 1, labels)


def shift_boundary(labels: torch.Tensor, targets: torch.Tensor, first: tuple[int, ...],
                   second: tuple[int, ...], steps: int) -> torch.Tensor:
    """Move the boundary between two groups: ``first`` grows into ``second`` (steps > 0) or back."""
    if steps > 0:
        return grow(labels, targets, first, second, steps)
    return grow(labels, targets, second, first, -steps)


def rebuild_cortex(labels: torch.Tensor, targets: torch.Tensor, csf_label: int, steps: int) -> torch.Tensor:
    """Replace the cortex by CSF, then regrow it from the white-matter surface by ``steps`` voxels,
    only where cortex or sulcal CSF was and never farther than ``steps`` voxels from the old cortex."""
    cortex = _in(targets, CORTEX)
    if steps <= 0 or not cortex.any():
        return labels
    zero = torch.zeros((), dtype=labels.dtype, device=labels.device)
    near_cortex = _spread(cortex.to(torch.uint8), torch.ones_like(cortex), steps) > 0
    region = (cortex | _in(targets, CSF)) & near_cortex
    # the cortical label each region voxel would take: the nearest old cortex label
    cortical_codes = _spread(torch.where(cortex, labels + 1, zero), region, 2 * steps)
    wm_front = _spread(_in(targets, WM).to(torch.uint8), region, steps) > 0
    new_cortex = region & wm_front & (cortical_codes > 0)
    out = torch.where(cortex, torch.full_like(labels, csf_label), labels)
    return torch.where(new_cortex, cortical_codes - 1, out)
