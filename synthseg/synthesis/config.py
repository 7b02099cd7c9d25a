"""Every knob of the generator, with the defaults used to train the shipped model.

Range fields follow :mod:`synthseg.synthesis.params` (number → symmetric, pair → range,
``False`` → off). ``validated()`` turns them into checked ``(min, max)`` pairs once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from synthseg.synthesis.params import RangeSpec, check_probability, to_range
from synthseg.synthesis.tissues import MR_CONTRASTS

MODES = ("mixed", "mr", "ct", *MR_CONTRASTS)


@dataclass
class GeneratorConfig:
    # output grid
    patch_size: tuple[int, int, int] = (96, 96, 96)
    spacing: float = 2.0  # mm, the working voxel size of the network
    # contrast family: mixed (MR and CT), mr (random + T1/T2/FLAIR/PD-like), ct, or one MR contrast
    mode: str = "mixed"
    ct_probability: float = 0.15  # share of CT samples in mixed mode
    mr_prior_probability: float = 0.5  # share of MR samples drawn from T1/T2/FLAIR/PD orderings
    # shape
    rotation: RangeSpec = 15.0  # degrees, per axis
    scaling: RangeSpec = 0.15  # relative, per axis, around 1
    shear: RangeSpec = 0.012
    translation: RangeSpec = 15.0  # mm, added to a random crop position inside the head
    elastic_std: RangeSpec = (0.0, 3.0)  # mm, std of the stationary velocity field
    elastic_spacing: float = 32.0  # mm between velocity control points
    flip_probability: float = 0.5
    # local morphology (mm; positive = the first structure grows into the second). Applied in whole
    # voxels of the render grid, rounded towards zero; forces the 2x finer grid when the template has it
    morphology_probability: float = 0.5
    cortex_csf: RangeSpec = 1.2
    cortex_wm: RangeSpec = 1.2
    nuclei_wm: RangeSpec = 2.0
    dura_csf: RangeSpec = (0.0, 1.5)
    cortex_rebuild_probability: float = 0.2
    cortex_rebuild_thickness: RangeSpec = (1.5, 3.5)
    # appearance
    mean: RangeSpec = (0.0, 255.0)
    std: RangeSpec = (0.0, 25.0)
    prior_jitter: float = 25.0  # std of the jitter around T1/T2/FLAIR/PD tissue priors
    texture_probability: float = 0.5
    texture_strength: RangeSpec = (0.0, 0.25)
    background_zero_probability: float = 0.1
    background_dark_probability: float = 0.3
    ct_std: RangeSpec = (2.0, 12.0)  # HU, per class
    ct_inference_window_probability: float = 0.6  # else a random window
    ct_window_centre: RangeSpec = (0.0, 400.0)
    ct_window_width: RangeSpec = (80.0, 3000.0)
    # acquisition
    bias_probability: float = 0.9
    bias_std: RangeSpec = (0.0, 0.5)
    bias_grid: int = 4
    gamma_std: float = 0.4
    noise_probability: float = 0.9
    noise_std: RangeSpec = (0.0, 0.06)  # relative to the image's robust maximum
    rician_probability: float = 0.5
    resolution_native_probability: float = 0.1
    resolution_isotropic_probability: float = 0.2
    resolution_isotropic: RangeSpec = (1.0, 4.0)  # mm
    resolution_thick: RangeSpec = (1.0, 8.0)  # mm along one random axis
    partial_volume_probability: float = 0.3  # render on a 2x finer grid, then pool
    motion_probability: float = 0.15
    motion_shots: tuple[int, int] = (2, 4)
    motion_translation: RangeSpec = (0.0, 3.0)  # mm
    fov_cut_probability: float = 0.3
    fov_cut: RangeSpec = (0.0, 40.0)  # mm removed at the top or bottom
    # skull stripping: everything outside a brain mask set to 0 in image and target, as users'
    # stripped scans arrive (FreeSurfer's norm.mgz, BET, SynthStrip, most lesion datasets)
    strip_probability: float = 0.15
    strip_margin: RangeSpec = (-2.0, 4.0)  # mm around the sulci-closed brain; < 0 shaves cortex off
    strip_closing: float = 4.0  # mm, radius of the closing that fills sulci before the margin

    def validated(self) -> "ValidatedConfig":
        return ValidatedConfig(self)


_RANGES = {
    "rotation": dict(low=-180, high=180), "scaling": dict(centre=1.0, low=0.01),
    "shear": dict(low=-1, high=1), "translation": dict(), "elastic_std": dict(low=0),
    "cortex_csf": dict(), "cortex_wm": dict(), "nuclei_wm": dict(), "dura_csf": dict(),
    "cortex_rebuild_thickness": dict(low=0), "mean": dict(), "std": dict(low=0),
    "texture_strength": dict(low=0, high=1), "ct_std": dict(low=0), "ct_window_centre": dict(),
    "ct_window_width": dict(low=1), "bias_std": dict(low=0), "noise_std": dict(low=0),
    "resolution_isotropic": dict(low=0), "resolution_thick": dict(low=0),
    "motion_translation": dict(low=0), "fov_cut": dict(low=0), "strip_margin": dict(),
}


class ValidatedConfig:
    """A config whose ranges are checked ``(min, max)`` pairs or ``None`` (off)."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.raw = config
        for f in fields(config):
            value = getattr(config, f.name)
            if f.name in _RANGES:
                value = to_range(value, f"generator.{f.name}", **_RANGES[f.name])
            elif f.name.endswith("_probability"):
                value = check_probability(value, f"generator.{f.name}")
            setattr(self, f.name, value)
        if config.mode not in MODES:
            raise ValueError(f"generator.mode: {config.mode!r} is not one of {', '.join(MODES)}")
        if len(config.patch_size) != 3 or min(config.patch_size) < 4:
            raise ValueError(f"generator.patch_size: expected three sizes >= 4, got {config.patch_size}")
        if config.spacing <= 0:
            raise ValueError(f"generator.spacing: must be > 0 mm, got {config.spacing}")
        if config.strip_closing < 0:
            raise ValueError(f"generator.strip_closing: must be >= 0 mm, got {config.strip_closing}")
        if config.elastic_spacing <= 0 or config.bias_grid < 2:
            raise ValueError("generator.elastic_spacing must be > 0 and generator.bias_grid >= 2")
        lo, hi = config.motion_shots
        if not 1 <= lo <= hi:
            raise ValueError(f"generator.motion_shots: expected 1 <= min <= max, got {config.motion_shots}")
        if (config.resolution_native_probability + config.resolution_isotropic_probability) > 1:
            raise ValueError("generator.resolution_*_probability: native + isotropic must not exceed 1")


def rendering_config(shape, spacing: float, mode: str, low_res: float | None = None,
                     thick_axis_mm: float | None = None) -> GeneratorConfig:
    """A generator config that renders a whole template in one contrast without changing its shape:
    spatial, morphology, flips, cuts, stripping and motion off; optional isotropic or thick-slice resolution."""
    resolution = {"resolution_native_probability": 1.0, "resolution_isotropic_probability": 0.0}
    if low_res:
        resolution = {"resolution_native_probability": 0.0, "resolution_isotropic_probability": 1.0,
                      "resolution_isotropic": (low_res, low_res)}
    elif thick_axis_mm:
        resolution = {"resolution_native_probability": 0.0, "resolution_isotropic_probability": 0.0,
                      "resolution_thick": (thick_axis_mm, thick_axis_mm)}
    return GeneratorConfig(
        patch_size=tuple(int(n) for n in shape), spacing=spacing, mode=mode, rotation=False, scaling=False,
        shear=False, translation=False, elastic_std=False, flip_probability=0.0, morphology_probability=0.0,
        partial_volume_probability=0.0, motion_probability=0.0, fov_cut_probability=0.0,
        strip_probability=0.0, ct_inference_window_probability=1.0, **resolution)
