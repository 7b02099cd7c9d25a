import torch

from synthseg.synthesis.spatial import affine_matrix, jacobian_determinant, smooth_displacement


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
