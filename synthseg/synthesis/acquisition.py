"""Acquisition: resolution (slice profile blur, down- and up-sampling), partial-volume pooling,
k-space motion ghosting, noise, field-of-view cuts and skull stripping (the brain mask a stripping tool
would have applied before the scan reaches us). Deterministic given their parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, device=None) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


# Lines blurred by one convolution call: its temporaries cost ≈ 4 bytes × kernel taps per voxel, which
# unbounded made the blur the peak of a fine scan's segmentation (≈ 80 bytes per voxel of a 0.7 mm head)
BLUR_CHUNK_VOXELS = 4_000_000


def blur(image: torch.Tensor, sigmas) -> torch.Tensor:
    """Separable Gaussian blur of a ``(X, Y, Z)`` volume with per-axis sigmas (voxels), edge-replicated.

    Each axis is a batched 1-D convolution over the lines along it (much cheaper than a 3-D conv), run on
    ``BLUR_CHUNK_VOXELS`` at a time so that memory stays a few copies of the volume.
    """
    out = image
    for axis, sigma in enumerate(sigmas):
        if sigma < 0.1:
            continue
        k = gaussian_kernel(float(sigma), image.device).view(1, 1, -1)
        radius = k.numel() // 2
        moved = out.movedim(axis, -1)
        lines = moved.reshape(-1, 1, moved.shape[-1])
        blurred = torch.empty_like(lines)
        step = max(1, BLUR_CHUNK_VOXELS // lines.shape[-1])
        for start in range(0, lines.shape[0], step):
            chunk = lines[start:start + step]
            blurred[start:start + step] = F.conv1d(F.pad(chunk, (radius, radius), mode="replicate"), k)
        out = blurred.reshape(moved.shape).movedim(-1, axis)
    return out.contiguous()


def simulate_resolution(image: torch.Tensor, spacing: float, low_res) -> torch.Tensor:
    """Blur with a slice profile (σ = 0.75 × ratio voxels, SynthSeg's choice), sample on the low-res
    grid, and interpolate back to the working grid."""
    ratios = [max(1.0, float(r) / spacing) for r in low_res]
    if max(ratios) <= 1.01:
        return image
    sigmas = [0.75 * r if r > 1.01 else 0.0 for r in ratios]
    shape = image.shape
    low_shape = [max(2, int(round(n / r))) for n, r in zip(shape, ratios)]
    low = F.interpolate(blur(image, sigmas)[None, None], size=low_shape, mode="trilinear", align_corners=True)
    return F.interpolate(low, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]


def pool_partial_volume(image: torch.Tensor) -> torch.Tensor:
    """Average a grid rendered at twice the resolution (``2n - 1`` points) down to ``n`` points with the
    [1, 2, 1]/4 triangle filter, whose centres coincide with the coarse voxel centres (edges replicated).

    Separable, on strided views: memory-bound, ≈ 4× faster than a strided convolution."""
    out = image
    for axis in range(3):
        x = out.movedim(axis, 0)
        between = x[1::2]
        left, right = torch.cat([x[:1], between]), torch.cat([between, x[-1:]])
        out = (0.5 * x[::2] + 0.25 * (left + right)).movedim(0, axis)
    return out


def kspace_motion(image: torch.Tensor, axis: int, shot_edges: list[int], shifts_vox: torch.Tensor) -> torch.Tensor:
    """Ghosting from rigid translations between shots: the k-space lines of shot ``s`` (along
    ``axis``, in acquisition order ``shot_edges``) come from the image shifted by ``shifts_vox[s]``.
    Each shot's phase ramp is applied to its own lines only (one pass over k-space in all)."""
    spectrum = torch.fft.fftn(image)
    freqs = [torch.fft.fftfreq(n, device=image.device) for n in image.shape]
    lines = torch.fft.fftshift(torch.arange(image.shape[axis], device=image.device))
    for shot, (start, stop) in enumerate(zip(shot_edges[:-1], shot_edges[1:])):
        shift = shifts_vox[shot]
        if not torch.any(shift != 0):
            continue
        index = lines[start:stop]
        axes = [freqs[a][index] if a == axis else freqs[a] for a in range(3)]
        phase = sum(axes[a].view([-1 if d == a else 1 for d in range(3)]) * shift[a] for a in range(3))
        part = spectrum.index_select(axis, index) * torch.exp(-2j * math.pi * phase)
        spectrum.index_copy_(axis, index, part)
    return torch.fft.ifftn(spectrum).abs()


def add_noise(image: torch.Tensor, sigma: float, rician: bool, noise_a: torch.Tensor,
              noise_b: torch.Tensor) -> torch.Tensor:
    """Gaussian noise, or Rician (magnitude of a complex signal with Gaussian noise on both parts)."""
    if rician:
        return torch.sqrt((image + sigma * noise_a) ** 2 + (sigma * noise_b) ** 2)
    return image + sigma * noise_a


def cut_field_of_view(shape, top_vox: int, bottom_vox: int, device=None) -> torch.Tensor:
    """Mask of the voxels kept when the top and bottom (last axis = superior) are cut away."""
    keep = torch.ones(shape, dtype=torch.bool, device=device)
    if top_vox > 0:
        keep[..., shape[2] - top_vox:] = False
    if bottom_vox > 0:
        keep[..., :bottom_vox] = False
    return keep


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a ``(X, Y, Z)`` mask by a cube of half-width ``radius`` voxels."""
    if radius <= 0:
        return mask
    return F.max_pool3d(mask[None, None].float(), 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion by a cube of half-width ``radius`` voxels (outside the grid counts as inside)."""
    return ~dilate(~mask, radius)


def brain_mask(brain: torch.Tensor, closing_vox: int, margin_vox: int) -> torch.Tensor:
    """The mask a skull-stripping tool keeps: the brain closed over its sulci (``closing_vox``), then
    grown (``margin_vox`` > 0: a rim of CSF and meninges kept) or shrunk (< 0: cortex shaved off)."""
    mask = erode(dilate(brain, closing_vox), closing_vox)
    return dilate(mask, margin_vox) if margin_vox >= 0 else erode(mask, -margin_vox)
