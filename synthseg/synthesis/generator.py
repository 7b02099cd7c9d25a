"""The synthetic generator: templates in, an endless stream of (image, target) pairs out.

Each sample is drawn in two steps: :meth:`Generator.sample_params` draws every random number of a
sample from its own seed (so a sample's parameters can be logged, and a batch of two equals two
single samples with the same seeds), then :meth:`Generator.render` applies them deterministically:

    shape (affine + velocity field, read from the template by world coordinates on the output
    grid only) → labels → local morphology → per-class intensities (MR or CT)
    → partial-volume pooling → texture → bias → resolution → motion → noise → normalisation → gamma
    → skull stripping → field-of-view cut → flip.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from synthseg.labels.protocol import BRAIN_IDS
from synthseg.synthesis import acquisition, intensity, morphology
from synthseg.synthesis.config import GeneratorConfig
from synthseg.synthesis.params import chance, uniform
from synthseg.synthesis.spatial import affine_matrix, smooth_displacement, upsample_midpoints
from synthseg.synthesis.tissues import MR_CONTRASTS
from synthseg.templates.library import Template
from synthseg.templates.recipe import Recipe


@dataclass
class SampleParams:
    """Every random number of one sample (plain Python values, JSON-serialisable)."""

    seed: int
    template: int
    partial_volume: bool
    rotation: list[float]
    scaling: list[float]
    shear: list[float]
    centre: list[float]
    elastic_std: float
    flip: bool
    morphology: dict[str, int]  # steps per rule on the render grid
    modality: str  # t1/t2/flair/pd (prior-based MR), random (MR), ct
    means: list[float]
    stds: list[float]
    texture_strength: float
    ct_window: list[float] | None
    bias_std: float
    gamma: float
    low_res: list[float]
    motion_shifts: list[list[float]] | None
    motion_axis: int
    noise_std: float
    rician: bool
    fov_cut: list[int]
    fields_seed: int = 0
    strip_margin: int | None = None  # output voxels around the closed brain mask; None = not stripped
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Generator:
    """Batched synthetic (image, target) pairs from templates; see the module docstring."""

    def __init__(self, templates: Sequence[Template], recipe: Recipe, config: GeneratorConfig | None = None,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        if not templates:
            raise ValueError("the generator needs at least one template")
        self.config = config or GeneratorConfig()
        self.cfg = self.config.validated()
        self.recipe = recipe
        self.device = torch.device(device)
        self.rng = torch.Generator().manual_seed(int(seed))
        # generation label codes → contiguous indices (code 0 → index 0)
        codes = sorted(recipe.labels)
        if codes[0] != 0:
            codes = [0] + codes
        self.codes = codes
        code_to_index = np.zeros(max(codes) + 1, dtype=np.int64)
        code_to_index[codes] = np.arange(len(codes))
        classes = recipe.class_names
        self.tissues = [recipe.classes[c] for c in classes]
        index_class = [classes.index(recipe.labels[c].intensity_class) if c in recipe.labels else 0 for c in codes]
        index_target = [recipe.labels[c].target if c in recipe.labels else 0 for c in codes]
        if len(codes) > 255:
            raise ValueError(f"recipe '{recipe.name}' has {len(codes)} codes; the generator supports up to 255")
        self.index_class = torch.tensor(index_class, device=self.device)
        self.index_target = torch.tensor(index_target, dtype=torch.uint8, device=self.device)
        self.brain_targets = torch.tensor(BRAIN_IDS, dtype=torch.uint8, device=self.device)
        self.background_class = index_class[0]
        csf = [i for i, t in enumerate(index_target) if t == 3]
        self.csf_index = csf[0] if csf else 0
        self.templates = []
        for t in templates:
            unknown = recipe.unknown_codes(np.unique(t.labels))
            if unknown:
                raise ValueError(f"template {t.name}: codes {unknown} are not in recipe '{recipe.name}'")
            index = torch.from_numpy(code_to_index[t.labels.astype(np.int64)].astype(np.uint8)).to(self.device)
            head = np.argwhere(t.labels > 0)
            lo, hi = head.min(0), head.max(0)
            centre = (t.affine @ np.append((lo + hi) / 2, 1))[:3]
            extent = (hi - lo + 1) * np.sqrt((t.affine[:3, :3] ** 2).sum(0))
            self.templates.append(dict(name=t.name, index=index.reshape(-1), shape=t.labels.shape,
                                       world_to_vox=np.linalg.inv(t.affine), centre=centre, extent=extent,
                                       spacing=float(np.sqrt((t.affine[:3, :3] ** 2).sum(0)).min())))

    # ------------------------------------------------------------------ sampling
    def sample_params(self, seed: int) -> SampleParams:
        """Draw all random numbers of one sample from ``seed``."""
        cfg, rng = self.cfg, torch.Generator().manual_seed(int(seed))
        n_classes = len(self.tissues)
        template = int(torch.randint(len(self.templates), (), generator=rng))
        tpl = self.templates[template]
        # local morphology, drawn in mm: it is applied on the render grid, so it forces the finer grid
        # when the template allows it (a 1-voxel step at 2 mm would erase whole gyri)
        morph_mm: dict[str, float] = {}
        if chance(rng, cfg.morphology_probability):
            for rule in morphology.RULES:
                bounds = getattr(cfg, rule)
                morph_mm[rule] = float(uniform(rng, bounds)) if bounds else 0.0
            if chance(rng, cfg.cortex_rebuild_probability):
                morph_mm["rebuild"] = float(uniform(rng, cfg.cortex_rebuild_thickness))
        # partial volume: render at half the output voxel, which only adds information when the
        # template is at least that fine (a 1 mm template rendered for a 2 mm output, not for 1 mm)
        fine_template = cfg.spacing >= 1.5 * tpl["spacing"]
        pv = fine_template and (chance(rng, cfg.partial_volume_probability) or bool(morph_mm))
        render_spacing = cfg.spacing / 2 if pv else cfg.spacing
        # whole voxels, rounded towards zero: a boundary never moves farther than the drawn distance
        morph = {rule: int(mm / render_spacing) for rule, mm in morph_mm.items()}
        if "rebuild" in morph:
            morph["rebuild"] = max(1, morph["rebuild"])
        fov = np.asarray(cfg.patch_size) * cfg.spacing
        crop_range = np.maximum(0.0, (tpl["extent"] - fov) / 2)
        t_lo, t_hi = cfg.translation or (0.0, 0.0)
        offsets = [float(uniform(rng, (-r + t_lo, r + t_hi))) for r in crop_range]
        centre = (tpl["centre"] + np.asarray(offsets)).tolist()
        modality = self._draw_modality(rng)
        ct_window = None
        if modality == "ct":
            ranges = intensity.ct_ranges(self.tissues)
            means = ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * torch.rand(n_classes, generator=rng)
            stds = uniform(rng, cfg.ct_std, (n_classes,))
            if chance(rng, cfg.ct_inference_window_probability):
                ct_window = list(intensity.CT_INFERENCE_WINDOW)
            else:
                c, w = float(uniform(rng, cfg.ct_window_centre)), float(uniform(rng, cfg.ct_window_width))
                ct_window = [c - w / 2, c + w / 2]
        else:
            if modality == "random":
                means = uniform(rng, cfg.mean, (n_classes,))
            else:
                means = intensity.prior_means(self.tissues, modality)
                means = (means + cfg.prior_jitter * torch.randn(n_classes, generator=rng)).clamp(0, 255)
            stds = uniform(rng, cfg.std, (n_classes,))
            r = float(torch.rand((), generator=rng))
            if r < cfg.background_zero_probability:
                means[self.background_class], stds[self.background_class] = 0.0, 0.0
            elif r < cfg.background_zero_probability + cfg.background_dark_probability:
                means[self.background_class] = float(uniform(rng, (0.0, 20.0)))
                stds[self.background_class] = float(uniform(rng, (0.0, 5.0)))
        texture = float(uniform(rng, cfg.texture_strength)) if chance(rng, cfg.texture_probability) else 0.0
        is_mr = modality != "ct"
        bias = float(uniform(rng, cfg.bias_std)) if is_mr and chance(rng, cfg.bias_probability) else 0.0
        gamma = float(math.exp(cfg.gamma_std * float(torch.randn((), generator=rng)))) if is_mr else 1.0
        low_res = self._draw_resolution(rng)
        motion, motion_axis = None, int(torch.randint(3, (), generator=rng))
        if is_mr and cfg.motion_translation and chance(rng, cfg.motion_probability):
            shots = int(torch.randint(cfg.motion_shots[0], cfg.motion_shots[1] + 1, (), generator=rng))
            size = float(uniform(rng, cfg.motion_translation)) / cfg.spacing
            shifts = size * torch.randn(shots, 3, generator=rng)
            shifts[0] = 0.0
            motion = shifts.tolist()
        noise = float(uniform(rng, cfg.noise_std)) if chance(rng, cfg.noise_probability) else 0.0
        rician = is_mr and chance(rng, cfg.rician_probability)
        cut = [0, 0]
        if cfg.fov_cut and chance(rng, cfg.fov_cut_probability):
            cut[int(torch.randint(2, (), generator=rng))] = int(float(uniform(rng, cfg.fov_cut)) / cfg.spacing)
        params = SampleParams(
            seed=int(seed), template=template, partial_volume=pv,
            rotation=uniform(rng, cfg.rotation, (3,)).tolist(), scaling=uniform(rng, cfg.scaling, (3,), 1.0).tolist(),
            shear=uniform(rng, cfg.shear, (3,)).tolist(), centre=centre,
            elastic_std=float(uniform(rng, cfg.elastic_std)), flip=chance(rng, cfg.flip_probability),
            morphology=morph, modality=modality, means=means.tolist(), stds=stds.tolist(),
            texture_strength=texture, ct_window=ct_window, bias_std=bias, gamma=gamma, low_res=low_res,
            motion_shifts=motion, motion_axis=motion_axis, noise_std=noise, rician=rician, fov_cut=cut,
            fields_seed=int(torch.randint(2 ** 62, (), generator=rng)))
        if chance(rng, cfg.strip_probability):  # drawn last: switching it on leaves every other draw as it was
            params.strip_margin = int(round(float(uniform(rng, cfg.strip_margin)) / cfg.spacing))
        return params

    def restyle(self, params: SampleParams, contrast: str) -> SampleParams:
        """The same draw in another MR contrast: geometry, morphology, bias, resolution, noise and
        stripping kept, class means redrawn around ``contrast``'s priors (seeded by the sample).

        Rendering both gives one anatomy in two contrasts, e.g. for a teacher that sees T1 while the
        network being trained sees T2 (``distill`` in the training config)."""
        if contrast not in MR_CONTRASTS:
            raise ValueError(f"restyle: contrast must be one of {', '.join(MR_CONTRASTS)}, got {contrast!r}")
        rng = torch.Generator().manual_seed(params.seed + 1 + MR_CONTRASTS.index(contrast))
        means = intensity.prior_means(self.tissues, contrast)
        means = (means + self.cfg.prior_jitter * torch.randn(len(self.tissues), generator=rng)).clamp(0, 255)
        if params.modality == "ct":  # CT stds are in HU: draw MR ones
            stds = uniform(rng, self.cfg.std, (len(self.tissues),)).tolist()
        else:  # an MR draw keeps its stds and its background choice
            stds = params.stds
            means[self.background_class] = params.means[self.background_class]
        return replace(params, modality=contrast, means=means.tolist(), stds=list(stds), ct_window=None)

    def _draw_modality(self, rng: torch.Generator) -> str:
        cfg = self.cfg
        if cfg.mode in MR_CONTRASTS:
            return cfg.mode
        if cfg.mode == "ct" or (cfg.mode == "mixed" and chance(rng, cfg.ct_probability)):
            return "ct"
        if chance(rng, cfg.mr_prior_probability):
            return MR_CONTRASTS[int(torch.randint(len(MR_CONTRASTS), (), generator=rng))]
        return "random"

    def _draw_resolution(self, rng: torch.Generator) -> list[float]:
        cfg = self.cfg
        r = float(torch.rand((), generator=rng))
        native = [cfg.spacing] * 3
        if r < cfg.resolution_native_probability:
            return native
        if r < cfg.resolution_native_probability + cfg.resolution_isotropic_probability:
            if cfg.resolution_isotropic is None:
                return native
            return [max(cfg.spacing, float(uniform(rng, cfg.resolution_isotropic)))] * 3
        if cfg.resolution_thick is None:
            return native
        axis = int(torch.randint(3, (), generator=rng))
        native[axis] = max(cfg.spacing, float(uniform(rng, cfg.resolution_thick)))
        return native

    # ------------------------------------------------------------------ rendering
    def render(self, params: SampleParams, timings: dict[str, float] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one sample's parameters: returns image ``(X, Y, Z)`` in [0, 1] and targets ``(X, Y, Z)``.

        ``timings``, when given, accumulates seconds per stage (for benchmarks).
        """
        cfg, dev = self.cfg, self.device
        clock = _StageClock(timings, dev)
        fields = torch.Generator(device=dev).manual_seed(params.fields_seed)
        factor = 2 if params.partial_volume else 1
        labels = self._sample_labels(params, factor, fields)
        shape = labels.shape  # the render grid: the output grid, or 2n - 1 points per axis for factor 2
        clock("shape")
        labels = self._apply_morphology(labels, params.morphology).long()
        clock("morphology")
        targets = self.index_target[labels]
        if factor == 2:
            targets = targets[::2, ::2, ::2]
        classes = self.index_class[labels]
        means = torch.tensor(params.means, device=dev)
        stds = torch.tensor(params.stds, device=dev)
        image = intensity.render_gmm(classes, means, stds, torch.randn(shape, generator=fields, device=dev))
        del labels, classes
        clock("intensities")
        if factor == 2:
            image = acquisition.pool_partial_volume(image)
        out_shape = image.shape
        clock("partial_volume")
        if params.texture_strength > 0:  # smooth over 8 output voxels, so the same with or without partial volume
            coarse = torch.randn([max(2, n // 8) for n in out_shape], generator=fields, device=dev)
            image = image * (1 + params.texture_strength * intensity.smooth_field(coarse, out_shape).clamp(-2, 2))
        clock("texture")
        if params.bias_std > 0:
            g = cfg.bias_grid
            log_field = params.bias_std * torch.randn((g, g, g), generator=fields, device=dev)
            image = image * torch.exp(intensity.smooth_field(log_field, out_shape))
        clock("bias")
        image = acquisition.simulate_resolution(image, cfg.spacing, params.low_res)
        clock("resolution")
        if params.motion_shifts is not None:
            n = out_shape[params.motion_axis]
            shots = len(params.motion_shifts)
            edges = [round(i * n / shots) for i in range(shots + 1)]
            image = acquisition.kspace_motion(image, params.motion_axis, edges,
                                              torch.tensor(params.motion_shifts, device=dev))
        clock("motion")
        if params.modality == "ct":
            sigma = params.noise_std * 200.0  # HU
            noise = torch.randn(out_shape, generator=fields, device=dev)
            image = intensity.window(image + sigma * noise, *params.ct_window)
        else:
            image = image.clamp(min=0)
            scale = intensity.robust_quantiles(image, (99.5,))[0].clamp(min=1e-3)
            noise_a = torch.randn(out_shape, generator=fields, device=dev)
            noise_b = torch.randn(out_shape, generator=fields, device=dev) if params.rician else noise_a
            image = acquisition.add_noise(image, params.noise_std * float(scale), params.rician, noise_a, noise_b)
            image = intensity.normalize_mr(image.clamp(min=0)) ** params.gamma
        clock("noise_gamma_normalise")
        keep = None
        if params.strip_margin is not None:
            brain = torch.isin(targets, self.brain_targets)
            keep = acquisition.brain_mask(brain, round(cfg.strip_closing / cfg.spacing), params.strip_margin)
        clock("skull_strip")
        if any(params.fov_cut):
            cut = acquisition.cut_field_of_view(out_shape, params.fov_cut[0], params.fov_cut[1], dev)
            keep = cut if keep is None else keep & cut
        if keep is not None:
            image = torch.where(keep, image, torch.zeros((), device=dev))
            targets = torch.where(keep, targets, torch.zeros((), dtype=targets.dtype, device=dev))
        if params.flip:
            image, targets = image.flip(0), targets.flip(0)
        image, targets = image.contiguous(), targets.long().contiguous()
        clock("cut_flip")
        return image, targets

    def _sample_labels(self, params: SampleParams, factor: int, fields: torch.Generator) -> torch.Tensor:
        """Template label indices at the world positions of the render grid (nearest neighbour).

        Template voxel coordinates are computed on the output grid (the affine part as three broadcast
        1-D ramps, plus the elastic displacement); for the ``factor`` 2 render grid they are linearly
        interpolated at the midpoints, so the shape of a sample does not depend on partial volume.
        """
        dev, cfg = self.device, self.cfg
        tpl = self.templates[params.template]
        matrix = affine_matrix(torch.tensor(params.rotation), torch.tensor(params.scaling), torch.tensor(params.shear))
        world_to_vox = torch.tensor(tpl["world_to_vox"], dtype=torch.float64)
        total = (world_to_vox[:3, :3] @ matrix).float().to(dev)  # patch mm → template voxels
        offset = (world_to_vox[:3, :3] @ torch.tensor(params.centre, dtype=torch.float64) + world_to_vox[:3, 3])
        shape, spacing = cfg.patch_size, cfg.spacing
        ramps = [(torch.arange(n, device=dev, dtype=torch.float32) - (n - 1) / 2) * spacing for n in shape]
        views = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
        coords = torch.stack([float(offset[c]) + sum(total[c, a] * ramps[a].view(views[a]) for a in range(3))
                              for c in range(3)])
        if params.elastic_std > 0:
            ctrl = [max(2, int(math.ceil(n * spacing / cfg.elastic_spacing)) + 1) for n in shape]
            noise = torch.randn((3, *ctrl), generator=fields, device=dev)
            coords += smooth_displacement(noise, params.elastic_std, shape, spacing, transform=total)
        if factor == 2:
            coords = upsample_midpoints(coords)
        size = tpl["shape"]
        index_dtype = torch.int32 if size[0] * size[1] * size[2] < 2 ** 31 else torch.int64  # cheaper gather
        flat = None
        inside = torch.ones(coords.shape[1:], dtype=torch.bool, device=dev)
        for c in range(3):
            vox = torch.round(coords[c]).to(torch.int32)
            inside &= (vox >= 0) & (vox < size[c])
            vox = vox.clamp_(0, size[c] - 1)
            stride = size[1] * size[2] if c == 0 else size[2] if c == 1 else 1
            flat = vox.to(index_dtype) * stride if flat is None else flat + vox * stride
        del coords
        labels = tpl["index"][flat]
        return torch.where(inside, labels, torch.zeros((), dtype=labels.dtype, device=dev))

    def _apply_morphology(self, labels: torch.Tensor, steps: dict[str, int]) -> torch.Tensor:
        m = morphology
        if steps.get("rebuild"):
            labels = m.rebuild_cortex(labels, self.index_target[labels.long()], self.csf_index, steps["rebuild"])
        for rule, (first, second) in m.RULES.items():
            if steps.get(rule):
                labels = m.shift_boundary(labels, self.index_target[labels.long()], first, second, steps[rule])
        return labels

    def output_affine(self, params: SampleParams) -> np.ndarray:
        """World affine of a sample's output grid, exact when rotation, scaling, shear, elastic and
        flip are off (as for rendering whole templates in a chosen contrast)."""
        n = np.asarray(self.cfg.patch_size)
        affine = np.diag([self.cfg.spacing] * 3 + [1.0])
        matrix = affine_matrix(torch.tensor(params.rotation), torch.tensor(params.scaling),
                               torch.tensor(params.shear)).numpy()
        affine[:3, :3] = matrix * self.cfg.spacing
        affine[:3, 3] = np.asarray(params.centre) - affine[:3, :3] @ ((n - 1) / 2)
        return affine

    # ------------------------------------------------------------------ batches
    def next_seeds(self, batch_size: int) -> list[int]:
        return torch.randint(2 ** 62, (batch_size,), generator=self.rng).tolist()

    def batch(self, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[SampleParams]]:
        """Images ``(B, 1, X, Y, Z)``, targets ``(B, X, Y, Z)`` and the parameters of each sample."""
        params = [self.sample_params(s) for s in seeds]
        pairs = [self.render(p) for p in params]
        images = torch.stack([p[0] for p in pairs])[:, None]
        targets = torch.stack([p[1] for p in pairs])
        return images, targets, params

    def __call__(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets, _ = self.batch(self.next_seeds(batch_size))
        return images, targets


class _StageClock:
    """Adds the seconds since the previous call to ``timings[stage]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None, device: torch.device) -> None:
        self.timings, self.device = timings, device
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now
