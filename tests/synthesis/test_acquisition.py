import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from synthseg.synthesis import acquisition
from synthseg.synthesis.acquisition import (add_noise, blur, brain_mask, dilate, erode, kspace_motion,
                                            pool_partial_volume, simulate_resolution)


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


def test_blur_in_chunks_of_lines_equals_the_blur_in_one_call(monkeypatch):
    volume = torch.rand(13, 17, 19, generator=torch.Generator().manual_seed(1))
    whole = blur(volume, [0.9, 2.0, 1.4])
    monkeypatch.setattr(acquisition, "BLUR_CHUNK_VOXELS", 100)  # 5 lines of 19, 6 of 17, 7 of 13 per call
    assert torch.allclose(blur(volume, [0.9, 2.0, 1.4]), whole, atol=1e-6)  # the kernels' batching differs
    reference = torch.from_numpy(gaussian_filter(volume.double().numpy(), [0.9, 2.0, 1.4], mode="nearest",
                                                 truncate=3.0))
    inside = (slice(3, -3), slice(6, -6), slice(5, -5))  # where the kernel radii round alike
    assert torch.allclose(whole.double()[inside], reference[inside], atol=2e-3)


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


def test_dilation_and_erosion_move_a_cube_face_by_the_radius():
    cube = torch.zeros(20, 20, 20, dtype=torch.bool)
    cube[6:14, 6:14, 6:14] = True
    assert dilate(cube, 2).sum() == 12 ** 3 and erode(cube, 2).sum() == 4 ** 3
    assert torch.equal(dilate(cube, 0), cube) and torch.equal(erode(dilate(cube, 3), 3), cube)


def test_brain_mask_fills_a_sulcus_then_applies_the_margin():
    brain = torch.zeros(24, 24, 24, dtype=torch.bool)
    brain[6:18, 6:18, 6:18] = True
    brain[11:13, 6:18, 12:18] = False  # a 2-voxel sulcus cut in from the top
    closed = brain_mask(brain, 2, 0)
    assert closed[11:13, 6:18, 12:17].all() and closed.sum() == 12 ** 3
    assert brain_mask(brain, 2, 1).sum() == 14 ** 3 and brain_mask(brain, 2, -1).sum() == 10 ** 3
    assert torch.equal(brain_mask(brain, 0, 0), brain)
