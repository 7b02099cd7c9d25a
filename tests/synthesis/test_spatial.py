import torch
import torch.nn.functional as F

from synthseg.synthesis.spatial import (affine_matrix, jacobian_determinant, smooth_displacement,
                                          upsample_midpoints)


def test_identity_affine():
    m = affine_matrix(torch.zeros(3), torch.ones(3), torch.zeros(3))
    assert torch.allclose(m, torch.eye(3, dtype=torch.float64))


def test_rotation_is_orthonormal():
    m = affine_matrix(torch.tensor([10.0, -20.0, 30.0]), torch.ones(3), torch.zeros(3))
    assert torch.allclose(m @ m.T, torch.eye(3, dtype=torch.float64), atol=1e-10)


def test_velocity_field_is_diffeomorphic_even_when_strong():
    generator = torch.Generator().manual_seed(0)
    for std in (3.0, 8.0):
        noise = torch.randn((3, 5, 5, 5), generator=generator)
        disp = smooth_displacement(noise, std, (40, 40, 40), 2.0)
        assert disp.abs().max() > 0.5  # it really deforms
        assert jacobian_determinant(disp, 2.0).min() > 0


def test_zero_std_is_identity():
    disp = smooth_displacement(torch.randn(3, 4, 4, 4), 0.0, (10, 10, 10), 1.0)
    assert torch.count_nonzero(disp) == 0


def test_transform_on_the_integration_grid_equals_transform_after_upsampling():
    noise = torch.randn((3, 4, 5, 6), generator=torch.Generator().manual_seed(1))
    matrix = torch.tensor([[0.9, 0.2, 0.0], [-0.1, 1.1, 0.3], [0.0, 0.05, 0.8]])
    plain = smooth_displacement(noise, 3.0, (30, 34, 38), 1.5)
    mapped = smooth_displacement(noise, 3.0, (30, 34, 38), 1.5, transform=matrix)
    assert torch.allclose(mapped, torch.einsum("ca,axyz->cxyz", matrix, plain), atol=1e-4)


def test_midpoint_upsampling_equals_aligned_trilinear_and_keeps_the_points():
    field = torch.randn((3, 5, 6, 7), generator=torch.Generator().manual_seed(3))
    fine = upsample_midpoints(field)
    assert fine.shape == (3, 9, 11, 13)
    assert torch.equal(fine[:, ::2, ::2, ::2], field)
    trilinear = F.interpolate(field[None], size=(9, 11, 13), mode="trilinear", align_corners=True)[0]
    assert torch.allclose(fine, trilinear, atol=1e-5)
