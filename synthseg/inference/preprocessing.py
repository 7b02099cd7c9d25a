"""Intensity preparation that matches training: CT recognised from its Hounsfield range (or brought back
to it from the two other scales CT is found in) and windowed like the generator's CT mode; everything else
normalised by robust percentiles (MR), after an optional N4 bias-field correction."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from synthseg.errors import check_choice
from synthseg.io.geometry import BoundingBox
from synthseg.io.image import strided_sample
from synthseg.synthesis.intensity import normalize_ct, normalize_mr

MODALITIES = ("auto", "mr", "ct")
# voxels of air kept around the head in the working grid's crop, where they cost no extra sliding window
HEAD_MARGIN_VOXELS = 4


# A skull-stripped CT with its background set to 0: the brain's Hounsfield range (CSF 0-15, WM 20-30,
# GM 35-45) and some values below 0 (CSF and noise). Measured (session 27): two real stripped CTs of
# ../shared/data/dev/ct_template median 28 / 29.5 HU, 2.5 % / 1.8 % negative; stripped CT renders of the
# held-out templates median 23-30 HU, 0.7-14 % negative; no MR scan of dev/ nor any MR render has a single
# negative voxel (foreground medians 0.4-1 for renders, 77-674 for real scans).
STRIPPED_CT_MEDIAN_HU = (10.0, 60.0)
STRIPPED_CT_MIN_NEGATIVE = 0.001
STRIPPED_CT_MIN_ZERO = 0.2

# CT stored without its -1024 intercept ("HU + 1024": air near 0) or in Cormack units (SPM's Clinical
# toolbox, clinical_h2c.m: HU + 1024 with -124..76 HU stretched elevenfold). Either way most voxels above
# air (>= 200) fall in the scale's image of the brain's band, -10..80 HU: measured (session 32) 0.59 for the
# Cormack template ../shared/data/dev/ct_template/scct_cormack and for its HU + 1024 version, at most 0.085
# for the other scale's band and for any MR scan of dev/ (IXI, stroke, bert, chris_t1).
BRAIN_BANDS = {"hu+1024": (1014.0, 1104.0), "cormack": (2154.0, 3104.0)}
MIN_BRAIN_BAND_SHARE = 0.4
CT_SCALE_NAMES = {"hu+1024": "Hounsfield units + 1024 (air near 0)", "cormack": "Cormack units (SPM Clinical toolbox)"}


def _sample(data: np.ndarray) -> np.ndarray:
    """At most ~2 million of the scan's values, evenly strided: enough for the statistics below."""
    return strided_sample(data, 2_000_000)


def looks_like_ct(data: np.ndarray) -> bool:
    """CT in HU: air near -1000 occupies a visible share of the field of view; or the head was masked
    to a zero background and the rest sits in the brain's HU range with some values below 0, which
    MR magnitude images never have. A CT stored as HU + 1024 counts too (:func:`ct_scale`)."""
    sample = _sample(data)
    if sample.min() >= 0 and ct_scale(sample) == "hu+1024":
        sample = to_hounsfield(sample, "hu+1024")
    if sample.min() <= -500:
        return bool(np.mean((sample > -1100) & (sample < -850)) > 0.05)
    foreground = sample[sample != 0]
    if np.mean(sample == 0) < STRIPPED_CT_MIN_ZERO or foreground.size < 1000:
        return False
    low, high = STRIPPED_CT_MEDIAN_HU
    return bool(low <= np.median(foreground) <= high and np.mean(foreground < 0) >= STRIPPED_CT_MIN_NEGATIVE)


def brain_band_shares(data: np.ndarray) -> dict[str, float]:
    """Per scale of ``BRAIN_BANDS``, the share of the voxels above air (>= 200) that fall in its brain band
    (0 where fewer than 1 % of the voxels are above air: too few to tell)."""
    sample = _sample(data)
    above_air = sample[sample >= 200]
    if above_air.size < 0.01 * sample.size:
        return dict.fromkeys(BRAIN_BANDS, 0.0)
    return {scale: float(np.mean((above_air >= low) & (above_air <= high)))
            for scale, (low, high) in BRAIN_BANDS.items()}


def ct_scale(data: np.ndarray) -> str:
    """How a CT scan's values are stored: ``"hu"``, ``"hu+1024"`` or ``"cormack"`` (see the bands above).
    Anything with values below -100, or with too little above air to tell, is taken as Hounsfield units."""
    sample = _sample(data)
    if sample.min() < -100:
        return "hu"
    shares = brain_band_shares(sample)
    return next((scale for scale, share in shares.items() if share >= MIN_BRAIN_BAND_SHARE), "hu")


def to_hounsfield(data: np.ndarray, scale: str) -> np.ndarray:
    """CT values of ``scale`` (:func:`ct_scale`) in Hounsfield units; Cormack units are mapped back as the
    Clinical toolbox's clinical_c2h.m does (below 900 unchanged, 900-3100 shrunk elevenfold, above shifted)."""
    values = np.asarray(data, dtype=np.float32)
    if scale == "hu":
        return values
    if scale == "cormack":
        stretched = values - 900.0
        values = 900.0 + np.where(stretched <= 0, stretched,
                                  np.where(stretched <= 2200.0, stretched / 11.0, stretched - 2000.0))
    return values - 1024.0


def detect_modality(data: np.ndarray, requested: str = "auto") -> str:
    check_choice("modality", requested, MODALITIES)
    if requested != "auto":
        return requested
    return "ct" if looks_like_ct(data) else "mr"


# N4 fits its field on a copy shrunk to about this many voxels along the scan's longest physical extent
# (with the pass that finds the brain, 4-10 s added to a scan on 2 CPU cores: IXI 2 mm, the stroke T1, 1 mm 256³;
# benchmarks/RESULTS.md)
N4_GRID_VOXELS = 64


def finite_values(data: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(values, note)``: the scan as float32 with its NaN/Inf voxels, if any, set to its lowest finite value (SPM
    writes NaN where a resliced scan saw nothing) and a note saying how many; ``note`` is None when there were none."""
    values = np.asarray(data, dtype=np.float32)
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if not count:
        return values, None
    note = f"{count} NaN/Inf voxels ({100 * count / values.size:.1f} %) read as background"
    return np.where(bad, values[~bad].min(), values), note


# a voxel further outside the scan's 0.5th-99.5th percentile range than OUTLIER_RANGES times that range is corrupt
# (a float scan's -FLT_MAX, a saturated integer, a slab's few pad values), provided such voxels are at most
# MAX_OUTLIER_SHARE of the scan: a head fills more of any field of view the segmenter accepts. The real scans
# of ../shared/data/dev reach at most 1.7 ranges (IXI's vessels); one MR voxel at -1e30 had made the working
# grid's fill its lower percentile (mean confidence 0.87 -> 0.29)
OUTLIER_RANGES = 10.0
MAX_OUTLIER_SHARE = 0.001


def clip_outliers(data: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(values, note)``: a few corrupt voxels far outside the rest of the scan (``OUTLIER_RANGES``,
    ``MAX_OUTLIER_SHARE``) clipped to the range of the others, and a note saying how many; ``(data, None)``
    unchanged when there are none. Left as they are, interpolation and blurring spread them over their
    neighbours, and one such value can become the fill of every working-grid voxel beyond the scan."""
    low, high = np.percentile(_sample(data), (0.5, 99.5))
    span = float(high - low)
    below, above = low - OUTLIER_RANGES * span, high + OUTLIER_RANGES * span
    if span <= 0 or below <= data.min() and data.max() <= above:  # the usual scan: no voxel-wise mask
        return data, None
    outside = (data < below) | (data > above)
    count = int(outside.sum())
    if count > MAX_OUTLIER_SHARE * data.size:
        return data, None
    rest, corrupt = data[~outside], data[outside]
    extremes = ", ".join(f"{v:g}" for v in sorted({float(corrupt.min()), float(corrupt.max())}))
    note = f"{count} voxel(s) far outside the rest of the scan's values ({extremes}) clipped to its range"
    return np.clip(data, rest.min(), rest.max()).astype(data.dtype, copy=False), note


# a value held by at least this share of an MR scan's voxels and further from the others than they span is a fill
# outside the field of view (-32768 from reslicing tools, the type's maximum from others), not intensity
MIN_FILL_SHARE = 0.01
# a fill inside the range (a z-scored scan resliced with 0 beyond what it saw) is one solid block: at least this
# share of its voxels have all six neighbours in it, where the flat air of a coarsely quantised scan, one grey level
# among its neighbours', has a few percent
MIN_FILL_SOLIDITY = 0.5


def fill_as_background(data: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(data, note)`` with an MR scan's out-of-view fill (``MIN_FILL_SHARE``) at either end of its range set to 0,
    the air of a magnitude image (to the lowest other value if none is above 0), and one inside its range
    (:func:`inside_fill`) set to its lowest other value; or ``(data, None)`` unchanged. Left as it is, the fill
    becomes a percentile of the intensity normalisation and squeezes the head into a sliver of the range (IXI
    resliced with a -32768 fill: mean Dice 0.03; with a 32767 fill: 0.23), or, inside the range, reads as tissue
    (IXI z-scored and resliced with a 0 fill: 0.688 against 0.735). Zero backgrounds, z-scored scans (their
    background plateau lies just below the tissue), a spline's undershoots (a few values below 0), saturated voxels
    (at the top of a continuous range) and a coarsely quantised scan's flat air are not fills."""
    notes = []
    inside = inside_fill(data)  # first: the ends' fills, once set to 0, lie inside the range
    if inside is not None:
        value, fill = inside
        count = int(fill.sum())
        data = np.where(fill, data[~fill].min(), data).astype(data.dtype, copy=False)
        notes.append(f"{count} voxels ({100 * count / data.size:.1f} %) hold {value:g} in solid blocks at the border, "
                     "inside the range: read as background outside the field of view")
    for end in ("below", "above"):
        value = data.min() if end == "below" else data.max()
        if end == "below" and value >= 0:  # a floor at 0 or above is the scan's own air
            continue
        fill = data == value
        count = int(fill.sum())
        if count < MIN_FILL_SHARE * data.size or count == data.size:
            continue
        rest = data[~fill]
        rest_low, rest_high = float(rest.min()), float(rest.max())
        gap = rest_low - float(value) if end == "below" else float(value) - rest_high
        if gap <= rest_high - rest_low:
            continue
        air = 0.0 if rest_high > 0 else rest_low
        data = np.where(fill, np.float32(air), data).astype(data.dtype, copy=False)
        notes.append(f"{count} voxels ({100 * count / data.size:.1f} %) hold {float(value):g}, far {end} the rest: "
                     "read as background outside the field of view")
    return data, "; ".join(notes) or None


def inside_fill(data: np.ndarray) -> tuple[float, np.ndarray] | None:
    """``(value, voxels)`` of a fill inside a scan's range, or None: the value the array's faces hold most, with
    ``MIN_FILL_SHARE`` of the voxels below it and above it (a spline's few undershoots below a zero background do
    not make that background a fill; a fill at either end is :func:`fill_as_background`'s), whose parts connected to
    a face hold that share of the voxels and are solid (``MIN_FILL_SOLIDITY``)."""
    from scipy import ndimage

    values, counts = np.unique(_on_faces(data), return_counts=True)
    value = values[counts.argmax()]
    least = MIN_FILL_SHARE * data.size
    if np.count_nonzero(data < value) < least or np.count_nonzero(data > value) < least:
        return None
    parts, _ = ndimage.label(data == value)
    touching = np.unique(_on_faces(parts))
    block = np.isin(parts, touching[touching > 0])
    size = np.count_nonzero(block)
    if size < least or np.count_nonzero(ndimage.binary_erosion(block, border_value=1)) < MIN_FILL_SOLIDITY * size:
        return None
    return float(value), block


def _on_faces(array: np.ndarray) -> np.ndarray:
    """The values on the six faces of a 3D array (corners and edges repeated)."""
    faces = ((0,), (-1,), (slice(None), 0), (slice(None), -1), (..., 0), (..., -1))
    return np.concatenate([np.asarray(array[face]).ravel() for face in faces])


def n4_unsuitable(data: np.ndarray) -> str | None:
    """Why N4 cannot correct a scan (negative values: not a magnitude image), or ``None``; cheap, so a caller
    can ask before it computes the mask."""
    return "it has negative values (not a magnitude image)" if np.asarray(data).min() < 0 else None


def bias_corrected(data: np.ndarray, spacing: Sequence[float], mask: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(scan / field, None)``: an MR scan divided by the smooth multiplicative bias field that N4 (SimpleITK)
    fits inside ``mask`` (the brain, where the tissue classes are known: a mask of the whole head lets scalp and
    skull pull the field, measured in benchmarks/RESULTS.md); ``(scan, reason)`` unchanged where N4 does not
    apply (negative values: not a magnitude image; an empty mask)."""
    import SimpleITK as sitk

    values = np.asarray(data, dtype=np.float32)
    unsuitable = n4_unsuitable(values)
    if unsuitable:
        return values, unsuitable
    if not np.any(mask):
        return values, "no brain was found to fit a field in"
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))  # ITK arrays are (k, j, i)
    image.SetSpacing([float(s) for s in spacing])
    itk_mask = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(mask, dtype=np.uint8).transpose(2, 1, 0)))
    itk_mask.CopyInformation(image)
    target = max(n * s for n, s in zip(values.shape, spacing)) / N4_GRID_VOXELS
    shrink = [max(1, int(round(target / s))) for s in spacing]
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.Execute(sitk.Shrink(image, shrink), sitk.Shrink(itk_mask, shrink))
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(image)).transpose(2, 1, 0)
    return (values / np.exp(log_field)).astype(np.float32), None


def normalize(data: np.ndarray, modality: str) -> np.ndarray:
    tensor = torch.from_numpy(np.asarray(data, dtype=np.float32))
    out = normalize_ct(tensor) if modality == "ct" else normalize_mr(tensor)
    return out.numpy()


def head_box_mask(normalized: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Voxels bright enough to belong to the head (used only to crop empty borders away)."""
    mask = normalized > threshold
    if mask.sum() < 0.001 * mask.size:
        return np.ones_like(mask)
    return mask


def windows_along(length: int, window: int, stride: int) -> int:
    """How many sliding windows cover ``length`` voxels along one axis, placed as MONAI's
    ``sliding_window_inference`` places them (a last window shifted back to end at the border)."""
    return 1 if length <= window else math.ceil((length - window) / stride) + 1


def head_crop(normalized: np.ndarray, window: Sequence[int] | None = None, overlap: float = 0.5) -> BoundingBox:
    """The part of a normalised working grid the network reads: the head (:func:`head_box_mask`) with
    ``HEAD_MARGIN_VOXELS`` of air around it; with ``window`` (the sliding windows' size, overlapping by
    ``overlap``), less of that margin along an axis where all of it would cost a row of windows more than the
    head needs. A 1 mm head on the 1.8 mm grid is often 4-8 voxels longer than one window with its margin,
    not without: two rows of windows instead of one, for air."""
    head = BoundingBox.around(head_box_mask(normalized))
    box = head.grown(HEAD_MARGIN_VOXELS)
    if window is None:
        return box
    start, stop = list(box.start), list(box.stop)
    for axis, size in enumerate(window):
        stride = max(1, int(size * (1 - overlap)))
        length = head.stop[axis] - head.start[axis]
        needed = windows_along(length, size, stride)
        if windows_along(box.stop[axis] - box.start[axis], size, stride) > needed:
            room = size + (needed - 1) * stride - length  # the margin these windows cover anyway
            below_free, above_free = head.start[axis] - box.start[axis], box.stop[axis] - head.stop[axis]
            above = min(room - min(room // 2, below_free), above_free)
            below = min(room - above, below_free)
            start[axis], stop[axis] = head.start[axis] - below, head.stop[axis] + above
    return BoundingBox(tuple(start), tuple(stop), box.shape)
