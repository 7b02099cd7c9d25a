"""Geometry as small pure functions ``Image → Image`` that keep the input's header.

Resampling is driven by world coordinates: a target grid is ``(shape, affine)`` and every output
voxel takes the value at its world position in the source. It runs through torch ``grid_sample``
in slabs along the last axis, so its sampling coordinates never cover a large grid at once. Labels go
back from a scan's working grids to its own grid by ``argmax_to_grid``, which interpolates
probabilities only where the winning class can change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import nibabel as nib
import numpy as np

from synthseg.io.image import Image

ORDERS = {0: "nearest", 1: "bilinear", 3: "bicubic"}


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def voxel_volume_ml(affine: np.ndarray) -> float:
    """One voxel's volume in ml: ``|det|`` of the affine's 3×3 part, so sheared and oblique grids count right."""
    return abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0


def reorient(image: Image, axcodes: Sequence[str] = ("R", "A", "S")) -> Image:
    """Permute/flip voxel axes (no interpolation) so they point along ``axcodes``; same world."""
    current = nib.orientations.io_orientation(image.affine)
    target = nib.orientations.axcodes2ornt(tuple(axcodes))
    transform = nib.orientations.ornt_transform(current, target)
    data = nib.orientations.apply_orientation(image.data, transform)
    affine = image.affine @ nib.orientations.inv_ornt_aff(transform, image.data.shape)
    return image.with_data(np.ascontiguousarray(data), affine)


def to_canonical(image: Image) -> Image:
    """Closest RAS+ voxel order (the working orientation of the whole pipeline)."""
    return reorient(image, ("R", "A", "S"))


def grid_for_spacing(shape: Sequence[int], affine: np.ndarray, spacing: float | Sequence[float]
                     ) -> tuple[tuple[int, ...], np.ndarray]:
    """A grid with the same axes and field-of-view centre at a new voxel size."""
    old = voxel_sizes(affine)
    new = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    new_shape = tuple(int(max(1, np.ceil(n * o / s - 1e-6))) for n, o, s in zip(shape, old, new))
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, :3] = affine[:3, :3] / old * new
    centre_old = affine @ np.append((np.asarray(shape) - 1) / 2, 1)
    centre_new = new_affine @ np.append((np.asarray(new_shape) - 1) / 2, 1)
    new_affine[:3, 3] += (centre_old - centre_new)[:3]
    return new_shape, new_affine


def resample_to_spacing(image: Image, spacing: float | Sequence[float], order: int = 1) -> Image:
    """Resample to a voxel size: order 1 (linear) or 3 (cubic) for images, 0 for label maps."""
    shape, affine = grid_for_spacing(image.shape, image.affine, spacing)
    data = resample_to_grid(image.data, image.affine, shape, affine, order=order)
    return image.with_data(data, affine)


def resample_to_grid(data: np.ndarray, affine: np.ndarray, shape: Sequence[int], target_affine: np.ndarray,
                     order: int = 1, fill: float = 0.0, slab_voxels: int = 4_000_000) -> np.ndarray:
    """Values of ``data`` (3D, or channels-first 4D) at the world positions of a target grid, as float32;
    ``order`` 0/1/3 = nearest/linear/cubic. Computed in slabs of about ``slab_voxels`` output voxels."""
    import torch
    import torch.nn.functional as F

    if order not in ORDERS:
        raise ValueError(f"order must be one of {sorted(ORDERS)}, got {order}")
    source = np.asarray(data)
    channels_first = source.ndim == 4
    volume = torch.from_numpy(np.ascontiguousarray(source if channels_first else source[None])).float()[None]
    shape = tuple(int(n) for n in shape)
    vox_to_src = np.linalg.inv(np.asarray(affine, float)) @ np.asarray(target_affine, float)
    size = np.asarray(source.shape[-3:], float)
    # normalised coordinates (align_corners=True): -1 .. 1 spans voxel 0 .. n-1
    to_norm = np.diag(np.append(2.0 / np.maximum(size - 1, 1), 1.0))
    to_norm[:3, 3] = -1.0
    for axis in np.flatnonzero(size == 1):  # a single slice sits at normalised 0
        to_norm[axis, axis] = to_norm[axis, 3] = 0.0
    matrix = torch.from_numpy(to_norm @ vox_to_src).float()
    out_channels = volume.shape[1]
    result = np.empty((out_channels, *shape) if channels_first else shape, dtype=np.float32)
    slab = max(1, slab_voxels // max(1, shape[0] * shape[1] * max(1, out_channels // 4)))
    ii, jj = torch.meshgrid(torch.arange(shape[0], dtype=torch.float32),
                            torch.arange(shape[1], dtype=torch.float32), indexing="ij")
    mode = ORDERS[order]
    for start in range(0, shape[2], slab):
        stop = min(shape[2], start + slab)
        kk = torch.arange(start, stop, dtype=torch.float32)
        idx = torch.stack([ii[..., None].expand(-1, -1, stop - start), jj[..., None].expand(-1, -1, stop - start),
                           kk.expand(shape[0], shape[1], -1), torch.ones(shape[0], shape[1], stop - start)], -1)
        norm = idx @ matrix.T  # (I, J, k, 4): normalised source (i, j, k)
        grid = norm[..., [2, 1, 0]][None]  # grid_sample wants (x=k, y=j, z=i) for input (D=i, H=j, W=k)
        if mode == "bicubic":
            out = _cubic(volume, norm[..., :3], fill)
        else:
            out = F.grid_sample(volume - fill, grid, mode=mode, padding_mode="zeros", align_corners=True) + fill
        out = out[0]
        result[..., start:stop] = (out if channels_first else out[0]).numpy()
    return result


def argmax_to_grid(sources: Sequence[tuple[np.ndarray, np.ndarray]], shape: Sequence[int],
                   target_affine: np.ndarray, chunk: int = 2_000_000) -> np.ndarray:
    """Argmax, on a target grid, of the mean of linearly resampled class probabilities of one or more
    ``(probs, affine)`` source grids whose axes are parallel to the target's (a scan's working grids
    always are: they are its canonical reorientation at another spacing).

    Equal to the argmax of the mean of ``resample_to_grid(probs, affine, ..., order=1)`` over the
    sources, computed cheaply: with parallel axes each target index maps to one source cell per axis,
    so cells are looked up separably; where every source's cell has one winning class on all eight
    corners, and the sources agree on it, interpolation cannot change the winner and the label is read
    directly. Probabilities are interpolated (eight gathered corners) only at the other voxels, a slab of about
    ``chunk`` target voxels at a time, from the part of each source that slab reads: memory beyond the labels
    grows with neither grid. Outside its grid a source counts as background.
    """
    import torch

    shape = tuple(int(n) for n in shape)
    labels, settled, plans = None, None, []
    for probs, affine in sources:
        axes, lookups = _parallel_axis_lookups(affine, probs.shape[1:], shape, target_affine)
        plans.append((axes, lookups))
        winner = np.pad(probs.argmax(0).astype(np.uint8), 1)  # padded with background, as the cells are
        lower = winner[:-1, :-1, :-1]
        uniform = np.ones(lower.shape, dtype=bool)
        for corner in _CORNERS[1:]:
            uniform &= winner[tuple(slice(c, n - 1 + c) for c, n in zip(corner, winner.shape))] == lower
        read, safe = (_cells(grid.transpose(axes), lookups) for grid in (lower, uniform))
        if labels is None:
            labels, settled = read, safe
        else:
            settled &= safe & (read == labels)
    channels = sources[0][0].shape[0]
    flat_labels, unsettled = labels.reshape(-1), ~settled.reshape(-1)
    plane = shape[1] * shape[2]
    planes = max(1, chunk // plane)  # target slabs of this many planes along its first axis
    for start in range(0, shape[0], planes):
        stop = min(shape[0], start + planes)
        border = start * plane + np.flatnonzero(unsettled[start * plane:stop * plane])
        where = np.unravel_index(border, shape)
        # torch: a gather into one buffer and a fused multiply-add on both cores, 1.7x numpy's fancy indexing
        total, corner_values = torch.zeros((len(border), channels)), torch.empty((len(border), channels))
        for (probs, _), (axes, lookups) in zip(sources, plans):
            rows, strides, first = _padded_rows(probs, axes, lookups[0][0][start:stop])
            rows = torch.from_numpy(rows)
            lows = [lookups[0][0][where[0]] - first] + [lookups[a][0][where[a]] for a in (1, 2)]
            base = torch.from_numpy(sum(lows[a] * strides[a] for a in range(3)))
            weights = [(1 - lookups[a][1][where[a]], lookups[a][1][where[a]]) for a in range(3)]
            for corner in _CORNERS:
                torch.index_select(rows, 0, base + int(np.dot(strides, corner)), out=corner_values)
                weight = weights[0][corner[0]] * weights[1][corner[1]] * weights[2][corner[2]]
                total.addcmul_(corner_values, torch.from_numpy(weight)[:, None])
        flat_labels[border] = total.argmax(1).numpy()
    return labels


def _cells(grid: np.ndarray, lookups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``grid`` (axes in the target's order) at each target voxel's lower cell: one ``take`` per axis, 4x faster
    than indexing by ``np.ix_``."""
    for axis, (low, _) in enumerate(lookups):
        grid = grid.take(low, axis=axis)
    return grid


def _padded_rows(probs: np.ndarray, axes: np.ndarray, lows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The part of ``probs`` (padded by one voxel of background all round) that a slab of the target reads: the
    padded cells ``lows.min()`` to ``lows.max() + 1`` along the source axis under the target's first axis, channels
    last (one corner is one row); its row strides per target axis, and the first padded cell it holds."""
    along, channels = int(axes[0]), probs.shape[0]
    first, last = int(lows.min()), int(lows.max()) + 1
    shape = [n + 2 for n in probs.shape[1:]]
    shape[along] = last - first + 1
    block = np.zeros((*shape, channels), dtype=np.float32)
    block[..., 0] = 1.0  # background all round
    inside = (max(first, 1), min(last, probs.shape[1 + along]))  # padded cells p holding probs[p - 1]
    if inside[0] <= inside[1]:
        target = [slice(1, -1)] * 3
        target[along] = slice(inside[0] - first, inside[1] - first + 1)
        source = [slice(None)] * 3
        source[along] = slice(inside[0] - 1, inside[1])
        block[tuple(target)] = np.moveaxis(probs[(slice(None), *source)], 0, -1)
    strides = np.array([shape[1] * shape[2], shape[2], 1])[axes]
    return block.reshape(-1, channels), strides, first


def probability_slabs(sources: Sequence[tuple[np.ndarray, np.ndarray]], shape: Sequence[int],
                      target_affine: np.ndarray, slab_voxels: int = 500_000
                      ) -> Iterator[tuple[tuple[slice, slice, slice], np.ndarray]]:
    """The mean of the linearly resampled class probabilities of one or more ``(probs, affine)`` source grids whose
    axes are parallel to the target's, on the target grid, in blocks: ``(where, block)`` pairs, ``where`` three
    slices of the target and each block ``(C, X, Y, k)`` float32, so a caller can store each (e.g. quantised) without
    ever holding the whole float volume. Blocks cover the box of target voxels that some source reaches, slab by slab
    along the last axis; outside it, and outside each source's grid, the probabilities are background (channel 0
    is 1), as in :func:`argmax_to_grid`, whose labels are therefore the argmax of these probabilities.

    Separable: with parallel axes, trilinear interpolation is one two-point blend per axis, done along the
    target's axes in turn (the last first), a few times faster than sampling every target voxel's eight corners.
    """
    import torch

    shape = tuple(int(n) for n in shape)
    channels = sources[0][0].shape[0]
    plans = []
    for probs, affine in sources:
        axes, lookups = _parallel_axis_lookups(affine, probs.shape[1:], shape, target_affine)
        reach = [_reached(low, weight, probs.shape[1 + along]) for (low, weight), along in zip(lookups, axes)]
        if None not in reach:
            plans.append((probs, axes, lookups, reach))
    if not plans:
        return
    box = [slice(min(reach[axis].start for *_, reach in plans), max(reach[axis].stop for *_, reach in plans))
           for axis in range(3)]
    volumes = []
    for probs, axes, lookups, _ in plans:
        padded = torch.zeros((channels, *(n + 2 for n in probs.shape[1:])), dtype=torch.float32)
        padded[0] = 1.0  # background all round
        padded[:, 1:-1, 1:-1, 1:-1] = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))
        blends = [(torch.from_numpy(low[span]), torch.from_numpy(weight[span]))
                  for (low, weight), span in zip(lookups, box)]
        volumes.append((padded.permute(0, *(1 + axes).tolist()), blends))  # source axes in the target's order
    size = [span.stop - span.start for span in box]
    slab = max(1, slab_voxels // (size[0] * size[1]))
    for start in range(0, size[2], slab):
        stop = min(size[2], start + slab)
        total = torch.zeros((channels, size[0], size[1], stop - start), dtype=torch.float32)
        total[0] = len(sources) - len(volumes)  # the background of the sources that reach no voxel of the target
        for volume, blends in volumes:
            for axis in (2, 0, 1):
                low, weight = blends[axis]
                if axis == 2:
                    low, weight = low[start:stop], weight[start:stop]
                along = [1, 1, 1, 1]
                along[1 + axis] = -1
                lower = volume.index_select(1 + axis, low)
                volume = lower.lerp_(volume.index_select(1 + axis, low + 1), weight.view(along))
            total += volume
        where = (box[0], box[1], slice(box[2].start + start, box[2].start + stop))
        yield where, total.div_(len(sources)).numpy()


def _reached(low: np.ndarray, weight: np.ndarray, length: int) -> slice | None:
    """The target indices whose blend (a :func:`_parallel_axis_lookups` lookup) reads some voxel of a source axis of
    ``length`` rather than only its background padding; None when none does."""
    on_padding = ((low == 0) & (weight == 0)) | ((low == length) & (weight == 1))
    hits = np.flatnonzero(~on_padding)
    return slice(int(hits[0]), int(hits[-1]) + 1) if len(hits) else None


_CORNERS = tuple(tuple((corner >> axis) & 1 for axis in range(3)) for corner in range(8))


def _parallel_axis_lookups(affine: np.ndarray, source_shape: Sequence[int], shape: Sequence[int],
                           target_affine: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """For a source grid whose axes are parallel to the target's: the source axis along each target
    axis, and per target axis the lower corner (in the source padded by one voxel) and the linear
    weight of the upper one, for every target index."""
    m = np.linalg.inv(np.asarray(affine, float)) @ np.asarray(target_affine, float)
    axes = np.abs(m[:3, :3]).argmax(0)
    scale = m[axes, np.arange(3)]
    across = m[:3, :3].copy()
    across[axes, np.arange(3)] = 0.0
    if len(set(axes.tolist())) < 3 or np.abs(across).max() > 1e-6 * np.abs(scale).max():
        raise ValueError("argmax_to_grid needs source grids whose axes are parallel to the target grid's")
    lookups = []
    for axis, along in enumerate(axes):
        n = int(source_shape[along])
        position = np.clip(scale[axis] * np.arange(shape[axis]) + m[along, 3] + 1, 0, n + 1)  # +1: padding
        low = np.minimum(np.floor(position).astype(np.intp), n)
        lookups.append((low, (position - low).astype(np.float32)))
    return axes, lookups


def _cubic(volume, norm, fill: float):
    """Cubic-spline interpolation (SciPy) at normalised coordinates; used for images only."""
    import torch
    from scipy import ndimage

    size = torch.tensor(volume.shape[-3:], dtype=torch.float32)
    coords = ((norm + 1) / 2 * (size - 1)).permute(3, 0, 1, 2).numpy()
    channels = [ndimage.map_coordinates(c.numpy(), coords, order=3, mode="constant", cval=fill, prefilter=True)
                for c in volume[0]]
    return torch.from_numpy(np.stack(channels))[None]


@dataclass(frozen=True)
class BoundingBox:
    """A box of voxels ``[start, stop)`` per axis in a grid of ``shape``."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    shape: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def cropped_affine(self, affine: np.ndarray) -> np.ndarray:
        """The affine of the box's voxels, given the full grid's: world positions stay."""
        out = np.array(affine, dtype=float)
        out[:3, 3] = (out @ np.append(self.start, 1))[:3]
        return out

    @classmethod
    def around(cls, mask: np.ndarray, margin: int | Sequence[int] = 0) -> "BoundingBox":
        shape = tuple(int(n) for n in mask.shape)
        if not mask.any():
            return cls((0, 0, 0), shape, shape)
        start, stop = [], []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            hits = np.flatnonzero(mask.any(axis=other))
            start.append(int(hits[0]))
            stop.append(int(hits[-1]) + 1)
        return cls(tuple(start), tuple(stop), shape).grown(margin)

    def grown(self, margin: int | Sequence[int]) -> "BoundingBox":
        """The box with ``margin`` voxels more on every side (per axis if a sequence), within its grid."""
        margin = np.broadcast_to(np.asarray(margin, int), (3,))
        return BoundingBox(tuple(int(max(0, a - m)) for a, m in zip(self.start, margin)),
                           tuple(int(min(n, b + m)) for b, m, n in zip(self.stop, margin, self.shape)), self.shape)


def beyond_box(shape: Sequence[int], affine: np.ndarray, box: BoundingBox, box_affine: np.ndarray) -> np.ndarray:
    """Which voxels of a grid (``shape``, ``affine``) lie beyond ``box`` of another grid (``box_affine``): their
    centres' nearest voxel of that grid is outside the box. Computed a few planes at a time (a 256³ grid's
    coordinates at once would take 0.4 GB)."""
    shape = tuple(int(n) for n in shape)
    mapping = (np.linalg.inv(box_affine) @ np.asarray(affine, dtype=float)).astype(np.float32)
    start, stop = np.array(box.start)[:, None], np.array(box.stop)[:, None]
    beyond = np.empty(shape, dtype=bool)
    rest = np.indices(shape[1:], dtype=np.float32).reshape(2, -1)
    for first in range(0, shape[0], 16):
        planes = np.arange(first, min(first + 16, shape[0]), dtype=np.float32)
        index = np.concatenate([np.repeat(planes, rest.shape[1])[None], np.tile(rest, len(planes))])
        nearest = np.rint(mapping[:3, :3] @ index + mapping[:3, 3:])
        inside = ((nearest >= start) & (nearest < stop)).all(axis=0)
        beyond[first:first + len(planes)] = ~inside.reshape((len(planes), *shape[1:]))
    return beyond


def crop_to_mask(image: Image, mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[Image, BoundingBox]:
    """Crop to the box around ``mask`` (plus margin); the affine moves so world positions stay."""
    box = BoundingBox.around(mask, margin)
    return image.with_data(np.ascontiguousarray(image.data[box.slices]), box.cropped_affine(image.affine)), box


def pad_to_shape(data: np.ndarray, box: BoundingBox, fill: float = 0) -> np.ndarray:
    """Put an array computed inside ``box`` back into the full grid (leading channels allowed)."""
    full = np.full(data.shape[:-3] + box.shape, fill, dtype=data.dtype)
    full[(...,) + box.slices] = data
    return full
