import torch
import torch.nn.functional as F

from synthseg.synthesis.acquisition import add_noise, blur, kspace_motion, pool_partial_volume, simulate_resolution


def _energy_along(volume, axis):
    spectrum = torch.fft.rfft(volume, dim=axis).abs() ** 2
    n = spectrum.shape[axis]
    return spectrum.narrow(axis, n // 2, n - n // 2).sum()


def test_thick_slices_remove_high_frequencies_along_their_axis():
    noise = torch.randn(48, 48, 48, generator=torch.Generator().manual_seed(0))
    thick = simulate_resolution(noise, 1.0, [1.0, 1.0, 6.0])
    assert _energy_along(thick, 2) < 0.05 * _energy_along(noise, 2)
    assert _energy_along(thick, 0) > 5 * _energy_along(thick, 2)
    assert torch.equal(simulate_resolution(noise, 1.0, [1.0, 1.0, 1.0]), noise)


def test_blur_keeps_constants_and_pooling_centres():
    const = torch.full((10, 11, 12), 3.0)
    assert torch.allclose(blur(const, [1.0, 2.0, 0.0]), const)
    fine = torch.arange(9.0)[:, None, None].expand(9, 9, 9).contiguous()
    pooled = pool_partial_volume(fine)
    assert pooled.shape == (5, 5, 5)
    assert torch.allclose(pooled[1:-1, 0, 0], torch.tensor([2.0, 4.0, 6.0]))


def test_partial_volume_pooling_is_the_triangle_filter_with_stride_two():
    fine = torch.rand(9, 11, 13, generator=torch.Generator().manual_seed(2))
    k = torch.tensor([0.25, 0.5, 0.25])
    kernel = (k[:, None, None] * k[None, :, None] * k[None, None, :])[None, None]
    padded = F.pad(fine[None, None], [1] * 6, mode="replicate")
    expected = F.conv3d(padded, kernel, stride=2)[0, 0]
    assert torch.allclose(pool_partial_volume(fine), expected, atol=1e-6)


def test_motion_without_shift_is_identity_and_with_shift_ghosts():
    image = torch.rand(16, 16, 16, generator=torch.Generator().manual_seed(1))
    still = kspace_motion(image, 1, [0, 8, 16], torch.zeros(2, 3))
    assert torch.allclose(still, image, atol=1e-5)
    moved = kspace_motion(image, 1, [0, 8, 16], torch.tensor([[0.0, 0, 0], [3.0, 0, 0]]))
    assert (moved - image).abs().mean() > 0.05


def test_rician_noise_is_non_negative_and_gaussian_is_additive():
    image = torch.zeros(8, 8, 8)
    a, b = torch.randn(8, 8, 8), torch.randn(8, 8, 8)
    assert add_noise(image, 0.1, True, a, b).min() >= 0
    assert torch.allclose(add_noise(image, 0.1, False, a, b), 0.1 * a)
