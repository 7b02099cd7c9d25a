"""Shape: affine matrices, stationary velocity fields integrated by scaling and squaring, and the
mapping from an output grid to template voxels (evaluated only on the requested grid).

Displacement fields are ``(3, X, Y, Z)`` tensors in mm on a grid that spans the output patch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_matrix(rotation_deg: torch.Tensor, scaling: torch.Tensor, shear: torch.Tensor) -> torch.Tensor:
    """3×3 matrix ``R · Sh · S`` from per-axis rotations (degrees), scalings and shears."""
    rx, ry, rz = (rotation_deg * math.pi / 180).tolist()
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    rot_x = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    rot_y = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    rot_z = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    h = shear.tolist()
    shear_m = torch.tensor([[1, h[0], h[1]], [0, 1, h[2]], [0, 0, 1]], dtype=torch.float64)
    return rot_z @ rot_y @ rot_x @ shear_m @ torch.diag(scaling.double())


def grid_coordinates(shape, spacing: float, device=None) -> torch.Tensor:
    """``(3, X, Y, Z)`` mm coordinates of a grid centred on 0 (float32)."""
    axes = [(torch.arange(n, device=device, dtype=torch.float32) - (n - 1) / 2) * spacing for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def velocity_to_displacement(velocity: torch.Tensor, steps: int = 6) -> torch.Tensor:
    """Integrate a stationary velocity field (``(3, X, Y, Z)``, in grid voxels) by scaling and squaring.

    The result is a diffeomorphic displacement (in grid voxels) when the velocity is smooth.
    """
    disp = velocity / (2 ** steps)
    for _ in range(steps):
        disp = disp + _warp_field(disp, disp)
    return disp


def _warp_field(field: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Sample ``field`` at ``x + disp(x)`` (both in grid voxels), with border padding."""
    shape = field.shape[1:]
    ident = torch.stack(torch.meshgrid(*[torch.arange(n, device=field.device, dtype=field.dtype) for n in shape],
                                       indexing="ij"))
    pos = ident + disp
    norm = torch.stack([2 * pos[i] / max(shape[i] - 1, 1) - 1 for i in range(3)], -1)
    grid = norm[..., [2, 1, 0]][None]
    return F.grid_sample(field[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def smooth_displacement(noise: torch.Tensor, std_mm: float, fine_shape, fine_spacing: float,
                        steps: int = 6, transform: torch.Tensor | None = None) -> torch.Tensor:
    """Displacement (mm) on ``fine_shape`` from control-point noise N(0, 1) scaled by ``std_mm``.

    The velocity is upsampled to a quarter-resolution integration grid, integrated, then upsampled.
    ``transform`` (3×3), when given, maps each displacement vector (e.g. mm → template voxels); it is
    applied on the integration grid, which equals applying it after the (linear) upsampling but
    touches 64× fewer voxels.
    """
    if std_mm <= 0:
        return torch.zeros((3, *fine_shape), device=noise.device)
    mid_shape = [max(4, (n + 3) // 4) for n in fine_shape]
    mid_spacing = [fine_spacing * (n - 1) / max(m - 1, 1) for n, m in zip(fine_shape, mid_shape)]
    velocity = F.interpolate(noise[None] * std_mm, size=mid_shape, mode="trilinear", align_corners=True)[0]
    velocity = velocity / torch.tensor(mid_spacing, device=noise.device).view(3, 1, 1, 1)  # mm → voxels
    disp = velocity_to_displacement(velocity, steps)
    disp = disp * torch.tensor(mid_spacing, device=noise.device).view(3, 1, 1, 1)  # voxels → mm
    if transform is not None:
        disp = torch.einsum("ca,axyz->cxyz", transform.to(disp), disp)
    return F.interpolate(disp[None], size=tuple(fine_shape), mode="trilinear", align_corners=True)[0]


def upsample_midpoints(field: torch.Tensor) -> torch.Tensor:
    """``(C, X, Y, Z)`` → ``(C, 2X-1, 2Y-1, 2Z-1)``: the original points, plus linear interpolation at
    every midpoint (exact for affine fields; what trilinear upsampling with aligned corners gives)."""
    out = field
    for axis in (1, 2, 3):
        shape = list(out.shape)
        shape[axis] = 2 * shape[axis] - 1
        refined = out.new_empty(shape)  # contiguous in the final layout; filled through a moved view
        x, r = out.movedim(axis, 0), refined.movedim(axis, 0)
        r[::2] = x
        r[1::2] = 0.5 * (x[:-1] + x[1:])
        out = refined
    return out


def jacobian_determinant(disp_mm: torch.Tensor, spacing: float) -> torch.Tensor:
    """det(I + ∇u) by central differences, for checking a displacement does not fold."""
    grads = []
    for comp in range(3):
        g = torch.gradient(disp_mm[comp], spacing=spacing)
        grads.append(torch.stack(g))
    jac = torch.stack(grads) + torch.eye(3, device=disp_mm.device).view(3, 3, 1, 1, 1)
    return torch.linalg.det(jac.permute(2, 3, 4, 0, 1))
