import numpy as np
import pytest

from synthseg.inference.preprocessing import (HEAD_MARGIN_VOXELS, MAX_OUTLIER_SHARE, OUTLIER_RANGES, bias_corrected,
                                              clip_outliers, fill_as_background, head_crop, windows_along)


def _scan(labels, seed=0):
    """Piecewise-constant MR-like intensities per label, with a little noise (never negative)."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(20, 100, 17)
    means[0] = 0.0
    return np.abs(means[labels] + rng.normal(0, 0.5, labels.shape)).astype(np.float32)


def _smooth_field(shape):
    x, y, z = (np.linspace(-1, 1, n) for n in shape)
    return np.exp(0.4 * x[:, None, None] + 0.3 * (z ** 2)[None, None, :] - 0.2 * y[None, :, None])


def _spread(image, mask):
    return image[mask].std() / image[mask].mean()


@pytest.mark.parametrize("spacing", [(4.0, 4.0, 4.0), (4.0, 4.0, 8.0)])
def test_a_smooth_field_is_divided_out(phantom_small, spacing):
    labels, _ = phantom_small
    if spacing[2] > spacing[0]:  # thick slices: every other slice of the phantom
        labels = labels[:, :, ::2]
    clean = _scan(labels)
    biased = clean * _smooth_field(labels.shape)
    corrected, skipped = bias_corrected(biased, spacing, labels > 0)
    assert skipped is None and corrected.shape == biased.shape and corrected.dtype == np.float32
    assert corrected.min() >= 0
    for label in (2, 16):  # white matter, head tissue: one intensity each before the field
        mask = labels == label
        assert _spread(corrected, mask) < 0.5 * _spread(biased, mask)


@pytest.mark.parametrize("value, inside, reason", [(7.0, False, "no brain was found"),
                                                   (-1.0, True, "negative values")])
def test_scans_n4_does_not_apply_to_are_returned_unchanged_with_the_reason(value, inside, reason):
    scan = np.full((12, 12, 12), 7.0, dtype=np.float32)
    scan[0, 0, 0] = value
    corrected, skipped = bias_corrected(scan, (1.0, 1.0, 1.0), np.full(scan.shape, inside))
    assert np.array_equal(corrected, scan) and reason in skipped


@pytest.mark.parametrize("undershoot", [False, True])
def test_a_negative_fill_outside_the_field_of_view_becomes_background(undershoot):
    scan = np.random.default_rng(0).uniform(3, 900, (20, 20, 20)).astype(np.float32)
    if undershoot:
        scan[10, :, :4] = -60  # a spline's overshoot below 0 at a sharp edge: part of the scan, not the fill
    padded = scan.copy()
    padded[:4] = -32768  # 20 % of the voxels, as a reslicing tool fills the corners it cannot see
    repaired, note = fill_as_background(padded)
    assert np.array_equal(repaired[4:], scan[4:]) and np.all(repaired[:4] == 0) and repaired.dtype == np.float32
    assert "1600 voxels (20.0 %) hold -32768, far below the rest" in note


@pytest.mark.parametrize("fill", [32767, 65535])
def test_a_fill_at_the_top_of_the_range_becomes_background(fill):
    scan = np.random.default_rng(3).uniform(0, 900, (20, 20, 20)).round().astype(np.uint16)
    padded = scan.copy()
    padded[:, :3] = fill  # 15 % of the voxels: corners a reslicing tool filled with the type's maximum
    repaired, note = fill_as_background(padded)
    assert np.array_equal(repaired[:, 3:], scan[:, 3:]) and np.all(repaired[:, :3] == 0)
    assert repaired.dtype == np.uint16
    assert note == f"1200 voxels (15.0 %) hold {fill}, far above the rest: read as background outside the field of view"


def test_fills_at_both_ends_are_both_background():
    scan = np.random.default_rng(4).uniform(5, 900, (20, 20, 20)).astype(np.float32)
    scan[:2], scan[-2:] = -32768, 32767
    repaired, note = fill_as_background(scan)
    assert np.all(repaired[:2] == 0) and np.all(repaired[-2:] == 0) and repaired[2:-2].min() >= 5
    assert "hold -32768, far below the rest" in note and "hold 32767, far above the rest" in note


def test_a_fill_inside_the_range_becomes_background():
    rng = np.random.default_rng(5)
    scan = rng.normal(500, 100, (30, 30, 30)).astype(np.float32)
    scan[:, :8] = rng.normal(20, 5, (30, 8, 30))  # air below the head
    scan = (scan - scan.mean()) / scan.std()  # z-scored: the air near -1.1, the tissue around 0.5
    i, j = np.mgrid[:30, :30]
    corners = np.minimum(i, 29 - i) + np.minimum(j, 29 - j) < 8  # four wedges a turned grid could not see
    unseen = np.broadcast_to(corners[:, :, None], scan.shape)
    resliced = np.where(unseen, np.float32(0), scan)
    repaired, note = fill_as_background(resliced)
    assert np.all(repaired[unseen] == scan[~unseen].min()) and np.array_equal(repaired[~unseen], scan[~unseen])
    assert note == (f"{unseen.sum()} voxels ({100 * unseen.mean():.1f} %) hold 0 in solid blocks at the border, "
                    "inside the range: read as background outside the field of view")


@pytest.mark.parametrize("case", ["z-scored", "zero background", "few voxels", "saturated",
                                  "quantised air", "undershoots"])
def test_values_that_are_not_a_fill_are_left_alone(case):
    rng = np.random.default_rng(1)
    scan = rng.uniform(100, 1000, (20, 20, 20)).astype(np.float32)
    scan[:8] = 0  # a skull-stripped scan with a zero background
    if case == "z-scored":
        scan = (scan - scan.mean()) / scan.std()  # the background is a plateau at the minimum, just below the tissue
    if case == "few voxels":
        scan[0, 0, :3] = -32768  # under 1 %: a handful of bad voxels, which the percentiles already ignore
    if case == "saturated":
        scan[8:12] = 1000  # 20 % clipped at the top of a continuous range (an 8-bit export): intensity, not a fill
    if case == "quantised air":  # most air at one grey level inside the range, among its neighbours' other levels
        scan[:8] = rng.choice([0, 1, 2, 3], p=[0.05, 0.6, 0.3, 0.05], size=(8, 20, 20))
    if case == "undershoots":
        scan[8, :, :3] = -40  # a spline's few values below the zero background at the brain's edge: not a fill
    repaired, note = fill_as_background(scan)
    assert note is None and repaired is scan


@pytest.mark.parametrize("value", [-3.4e38, -1e30, 1e30, 65535.0])
def test_a_few_corrupt_voxels_are_clipped_to_the_range_of_the_others(value):
    scan = np.random.default_rng(2).uniform(0, 900, (20, 20, 20)).astype(np.float32)
    corrupt = scan.copy()
    corrupt[3, 4, 5] = corrupt[6, 7, 8] = value
    repaired, note = clip_outliers(corrupt)
    others = np.ones(scan.shape, bool)
    others[3, 4, 5] = others[6, 7, 8] = False
    assert np.array_equal(repaired[others], scan[others]) and repaired.dtype == np.float32
    expected = scan[others].min() if value < 0 else scan[others].max()
    assert repaired[3, 4, 5] == repaired[6, 7, 8] == expected
    assert note == f"2 voxel(s) far outside the rest of the scan's values ({value:g}) clipped to its range"


@pytest.mark.parametrize("case", ["bright vessels", "too many", "no spread"])
def test_values_that_are_not_a_few_corrupt_voxels_are_left_alone(case):
    scan = np.random.default_rng(3).uniform(100, 200, (20, 20, 20)).astype(np.float32)
    if case == "bright vessels":  # within OUTLIER_RANGES of the percentile range: anatomy
        scan[5, 5, :] = 200 + (OUTLIER_RANGES - 1) * 100
    if case == "too many":  # more than MAX_OUTLIER_SHARE of the scan: not a few corrupt voxels
        scan.reshape(-1)[: int(2 * MAX_OUTLIER_SHARE * scan.size) + 1] = -1e30
    if case == "no spread":  # a constant scan with one odd voxel: no range to measure against
        scan[:] = 5.0
        scan[0, 0, 0] = 1e30
    repaired, note = clip_outliers(scan)
    assert note is None and repaired is scan


@pytest.mark.parametrize("length", [20, 24, 25, 30, 36, 37, 60, 61])
@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_windows_along_counts_the_windows_monai_places(length, overlap):
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval

    window = 24
    interval = _get_scan_interval((length,), (window,), 1, (overlap,))
    stride = int(window * (1 - overlap))
    placed = len(dense_patch_slices((max(length, window),), (window,), interval))
    assert windows_along(length, window, stride) == placed


def _head(shape, start, stop):
    """A normalised grid of air with a bright box ``[start, stop)`` for the head."""
    grid = np.zeros(shape, np.float32)
    grid[tuple(slice(a, b) for a, b in zip(start, stop))] = 1.0
    return grid


def test_without_windows_the_crop_is_the_head_and_its_margin():
    box = head_crop(_head((60, 60, 60), (10, 12, 14), (40, 41, 42)))
    m = HEAD_MARGIN_VOXELS
    assert box.start == (10 - m, 12 - m, 14 - m) and box.stop == (40 + m, 41 + m, 42 + m)


def test_a_margin_that_would_cost_a_row_of_windows_is_trimmed_around_the_head():
    # along axis 0 the head (22) fits one 24-voxel window, its margin would not (30): trimmed to 24, centred;
    # axis 1 needs two windows either way (stride 12: up to 36) and keeps its margin; axis 2 fits one with it
    box = head_crop(_head((60, 60, 60), (20, 10, 20), (42, 38, 34)), window=(24, 24, 24), overlap=0.5)
    m = HEAD_MARGIN_VOXELS
    assert (box.start[0], box.stop[0]) == (19, 43)
    assert (box.start[1], box.stop[1]) == (10 - m, 38 + m)
    assert (box.start[2], box.stop[2]) == (20 - m, 34 + m)
    lengths = [b - a for a, b in zip(box.start, box.stop)]
    assert [windows_along(n, 24, 12) for n in lengths] == [1, 2, 1]


def test_a_trimmed_margin_lies_where_the_grid_has_room():
    # the head touches the grid's first voxel: what margin the window allows lies above it
    box = head_crop(_head((60, 60, 60), (0, 20, 20), (21, 30, 30)), window=(24, 24, 24), overlap=0.5)
    assert (box.start[0], box.stop[0]) == (0, 24)


def test_a_wider_overlap_trims_the_margin_only_where_it_costs_windows():
    # stride 18 at overlap 0.25: a 40-voxel head needs two windows (up to 42); its margin (48) would need three
    box = head_crop(_head((80, 80, 80), (20, 20, 20), (60, 30, 30)), window=(24, 24, 24), overlap=0.25)
    assert (box.start[0], box.stop[0]) == (19, 61)
    assert windows_along(box.stop[0] - box.start[0], 24, 18) == 2
