"""``Segmenter``: load a model once, segment many scans; ``segment()``: the one-shot form.

Pipeline: load → canonical orientation → (on request, MR only: N4 bias-field correction) → anti-aliased
resampling to the model's working spacing → intensity normalisation as in training (MR percentiles / CT window)
→ crop to the head → sliding-window inference with Gaussian blending → when the model has contrast experts, a
second pass by the expert the first pass points to (:mod:`synthseg.inference.experts`) → the argmax of the
working grids' probabilities on the output grid (the input's, or an isotropic one with ``voxel_size``), read
directly where they agree, interpolated only near boundaries → stray islands reassigned
(:mod:`synthseg.inference.cleanup`) → uint8 labels with the input's header; volumes from the working grids'
probabilities (:func:`soft_volumes`).

Test-time augmentation (on by default) runs each working grid also mirrored left/right, and runs a
second working grid 10 % finer than the model's: averaged on the input grid, the two grids sample the
scan at different points and show the network the head at two sizes, which recovers detail the coarse
grid loses (thin cortex, CSF). A fine scan routed to an expert with a fine grid (a network of its contrast
trained on a finer working grid) is segmented on that grid too (``FINE_SCAN_MAX_SPACING_MM``).
"""

from __future__ import annotations

import copy
import numbers
import time
from pathlib import Path
from typing import Any, Sequence

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from synthseg.device import AMP_MODES, autocast_dtype, resolve_device
from synthseg.errors import SynthSegError, check_choice
from synthseg.inference.cleanup import remove_islands
from synthseg.inference.coverage import brain_at_edges, coverage_warning, cut_on_opposite_sides
from synthseg.io.geometry import (BoundingBox, argmax_to_grid, beyond_box, grid_for_spacing, pad_to_shape,
                                  probability_slabs, resample_to_grid, to_canonical, voxel_sizes, voxel_volume_ml)
from synthseg.io.image import MAX_VOXELS, Image, load_image, looks_like_label_map, validate_image
from synthseg.inference.experts import FineGrid, choose_expert, contrast_signature, signature_as_list
from synthseg.inference.pose import (MAX_RESIDUAL_MM, POSE_READS, POSE_REREAD_DEGREES, POSE_TURN_DEGREES,
                                    head_rotation, rotation_degrees, structure_centroids, turned_grid)
from synthseg.inference.hemispheres import NoMidsagittalPlane, hemisphere_map, hemisphere_volumes, midsagittal_plane
from synthseg.inference.memory import memory_mark, memory_needed, room_since
from synthseg.inference.model import LoadedModel, load_model
from synthseg.inference.preprocessing import (CT_SCALE_NAMES, MODALITIES, bias_corrected, clip_outliers, ct_scale,
                                              detect_modality, fill_as_background, finite_values, head_crop,
                                              n4_unsuitable, normalize, to_hounsfield)
from synthseg.inference.result import SegmentationResult
from synthseg.labels.protocol import BRAIN_STRUCTURE_IDS, INTRACRANIAL, NUM_CLASSES, STRUCTURES
from synthseg.synthesis.acquisition import blur
from synthseg.synthesis.intensity import MR_PERCENTILES, robust_quantiles

# Skull + rest of head below this fraction of the intracranial volume: the input was skull-stripped. Measured
# with the session-8 and session-9 models: stripped scans 0.008-0.13 (bert norm.mgz, stroke T1/T2/FLAIR,
# stripped CT), whole heads 0.9-1.6 (IXI, chris_t1, CT).
STRIPPED_HEAD_RATIO = 0.25
# Where N4 fits a bias field (bias_correct=True): brain and CSF under one pass of the general network, grown by
# a margin for the labels' misses. Against an Otsu mask of the whole head (scalp and skull pull the field), IXI
# as acquired 0.7404 -> 0.7494 (0.7484 without N4), under a field of 0.4 0.7382 -> 0.7408 (benchmarks/RESULTS.md)
N4_MASK_MARGIN_MM = 6.0
# Working-grid spacings as factors of the model's: the plain grid and, with TTA, a second one 10 % finer
# (the network sees the head 11 % larger on a grid that samples the scan at other points; measured in
# benchmarks/RESULTS.md against a second 2 mm grid shifted by half a voxel)
TTA_SPACING_FACTORS = (1.0, 0.9)
# With test-time augmentation, a scan whose voxels are no larger than this in any direction is also segmented on its
# expert's fine working grid, when the expert has one (the T1, T2, FLAIR and CT experts: networks of their contrast
# trained on a 1.5 mm grid), averaged with the other grids: it lifts the 1 mm held-out renders of every contrast
# that has one, bert and the stroke agreement (gains in the README and the model card), but T1 with 6 mm slices
# -0.008 to +0.001 and IXI's 2 mm T1 0.7569 -> 0.7491 (benchmarks/RESULTS.md, "A finer T1 grid in the test-time
# augmentation"), hence only fine scans (1 mm, and 1.2 mm like ADNI's sagittal T1)
FINE_SCAN_MAX_SPACING_MM = 1.2
# the fine grid's sliding windows overlap by at most this: its head crop holds 2.4 times the 2 mm grid's voxels, and
# at the usual 0.5 it took twice the time for 0.0000 / +0.0006 / +0.0009 (bert / two held-out T1 renders at 1 mm)
FINE_GRID_OVERLAP = 0.25
# a scan whose finest working grid over its whole field of view would hold more voxels than this holds no single
# head (40 M voxels at 1.8 mm: a 616 mm cube; a head and neck fit in 250 x 250 x 400 mm): refused before any work,
# most often a header in other units (one in cm asked for 83 GB)
MAX_WORKING_VOXELS = 40_000_000
# nor may the part of it the network reads, the crop around what is bright enough to be head, hold more than
# MAX_HEAD_VOXELS (a 455 mm cube at 1.8 mm, ≈ 8 GB with TTA by memory.memory_needed): no head is that large (a
# 600 mm cube filled with tissue, 37 M voxels, took 13.5 GB and 5 minutes)
MAX_HEAD_VOXELS = 16_000_000
# an output voxel size (``voxel_size``) outside this range, in mm, is refused as a mistake
OUTPUT_VOXEL_RANGE_MM = (0.2, 10.0)


def check_options(threads: int | None = None, modality: str = "auto", overlap: float = 0.5,
                  amp: str = "auto", voxel_size: float | None = None) -> None:
    """Refuse bad segmentation options up front, before a model loads or a batch starts."""
    low, high = OUTPUT_VOXEL_RANGE_MM
    if voxel_size is not None and (isinstance(voxel_size, bool) or not isinstance(voxel_size, numbers.Real)
                                   or not low <= voxel_size <= high):
        raise SynthSegError(f"voxel_size must be a number of mm in [{low}, {high}] (None: the scan's own grid), "
                            f"got {voxel_size!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 0):
        raise SynthSegError(f"threads must be a whole number >= 0 (0 or None: torch's default), got {threads!r}")
    check_choice("modality", modality, MODALITIES)
    if not 0 <= overlap < 1:
        raise SynthSegError(f"overlap must be in [0, 1), got {overlap!r}")
    check_choice("amp", amp, AMP_MODES)


class Segmenter:
    """Load a model once and segment scans of any contrast, orientation and resolution."""

    def __init__(self, model: str | Path | None = None, device: str = "auto", tta: bool = True,
                 threads: int | None = None, modality: str = "auto", overlap: float = 0.5,
                 amp: str = "auto", experts: bool = True, cleanup: bool = True, pose: bool = True,
                 bias_correct: bool = False, voxel_size: float | None = None, hemispheres: bool = False,
                 contrast: str = "auto") -> None:
        check_options(threads=threads, modality=modality, overlap=overlap, amp=amp, voxel_size=voxel_size)
        if threads:
            torch.set_num_threads(int(threads))
        self.device = resolve_device(device)
        self.loaded = load_model(model, self.device, experts=experts)
        # "auto": an MR scan's expert is chosen from its contrast signature; a contrast name: that MR expert, unasked
        self.contrast = self._checked_contrast(contrast, experts)
        self.tta = tta
        self.modality = modality
        self.overlap = overlap
        self.amp = amp
        self.cleanup = cleanup
        self.pose = pose
        self.bias_correct = bias_correct
        self.voxel_size = voxel_size  # None: outputs on the scan's own grid
        self.hemispheres = hemispheres  # brain volumes also per hemisphere (:mod:`synthseg.inference.hemispheres`)

    @classmethod
    def from_network(cls, network: torch.nn.Module, card: dict, device: str = "cpu", **options) -> "Segmenter":
        """Wrap an in-memory network (tests, validation during training) without files; one pass per
        window and no island clean-up unless ``tta=True`` / ``cleanup=True`` is given."""
        check_options(**{k: v for k, v in options.items() if k in ("modality", "overlap", "amp", "voxel_size")})
        self = cls.__new__(cls)
        self.device = resolve_device(device)
        self.loaded = LoadedModel(network.to(self.device).eval(), card, None)
        self.tta = options.get("tta", False)
        self.modality = options.get("modality", "auto")
        self.overlap = options.get("overlap", 0.5)
        self.amp = options.get("amp", "auto")
        self.cleanup = options.get("cleanup", False)
        self.pose = options.get("pose", False)
        self.bias_correct = options.get("bias_correct", False)
        self.voxel_size = options.get("voxel_size")
        self.hemispheres = options.get("hemispheres", False)
        self.contrast = "auto"
        return self

    def _checked_contrast(self, contrast: str, experts: bool) -> str:
        """``contrast`` when the model can honour it: "auto", or one of its MR experts' contrasts."""
        if contrast == "auto":
            return contrast
        if not experts:
            raise SynthSegError(f"contrast={contrast!r} names an expert, but experts are off (--no-experts)")
        names = [e.contrast for e in self.loaded.experts if e.signature is not None]
        if contrast not in names:
            raise SynthSegError(f"contrast must be 'auto' or one of the model's MR experts "
                                f"({', '.join(names) or 'none'}), got {contrast!r}",
                                self.loaded.path or "<in-memory model>")
        return contrast

    @property
    def card(self) -> dict:
        return self.loaded.card

    @property
    def window(self) -> tuple[int, ...]:
        """The sliding window every working grid is read through: the model's training patch."""
        return tuple(int(n) for n in self.card["patch_size"])

    # ------------------------------------------------------------------ public API
    def segment(self, x: Any, affine: np.ndarray | None = None, posteriors: bool = False) -> SegmentationResult:
        """Segment a path, a nibabel image, an :class:`Image`, or an array with its affine. Labels and posteriors
        come on the scan's own grid or, with ``voxel_size``, on :meth:`output_grid`; volumes are
        :func:`soft_volumes`, whichever grid that is. A scan whose test-time augmentation would not fit in
        memory gets one pass, with a warning (:mod:`synthseg.inference.memory`)."""
        try:
            return self._segment(x, affine, posteriors, memory_mark())
        except _OnePassFits as signal:  # the first attempt's arrays go with its traceback, before the second
            image, warning = signal.image, str(signal)
        one_pass = copy.copy(self)
        one_pass.tta = False
        result = one_pass._segment(image, None, posteriors, memory_mark())
        result.warnings.insert(0, warning)
        return result

    def _segment(self, x: Any, affine: np.ndarray | None, posteriors: bool, mark: tuple[float, float]
                 ) -> SegmentationResult:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        image = self._as_image(x, affine)
        self._check_field_of_view(image)
        timings["load_s"] = time.perf_counter() - start
        out_shape, out_affine = self.output_grid(image)
        t = time.perf_counter()
        data, modality, warnings, outside = self._values(image, self.modality)
        if modality == "ct" and self.contrast != "auto":
            raise SynthSegError(f"reads as CT, but contrast={self.contrast!r} names an MR expert (--modality mr if it "
                                "is an MR scan)", image.path or "<array>")
        canonical, corrected = to_canonical(image.with_data(data)), False
        if self.bias_correct and modality == "mr":
            canonical, skipped = self._bias_corrected(canonical)
            corrected = skipped is None
            if skipped:
                warnings.append(f"bias correction skipped: {skipped}")
        timings["preprocess_s"], timings["inference_s"] = time.perf_counter() - t, 0.0
        t = time.perf_counter()
        spacing = TTA_SPACING_FACTORS[0] * float(self.card["spacing_mm"])
        antialiased = self._antialiased(canonical, spacing)
        work, box, work_affine = self._prepare(antialiased, modality, spacing)
        timings["preprocess_s"] += time.perf_counter() - t
        t = time.perf_counter()
        # the first grid chooses the network and reads the pose (the working grids' turn); the other grids reuse both
        self._check_head_size(work.shape, spacing, image)
        self._check_memory(image, out_shape, work.shape, spacing, posteriors, mark)
        probs, chosen, signature, network = self._infer(work, modality)
        first_grid, pose, turn = self._settle_pose(probs, antialiased, modality, spacing, network, box, work_affine)
        timings["inference_s"] += time.perf_counter() - t
        grids = [(first_grid, box, work_affine)]  # (head-crop probabilities, crop, affine)
        factors = TTA_SPACING_FACTORS[1:] if self.tta else ()
        others = [(factor * float(self.card["spacing_mm"]), network, self.overlap) for factor in factors]
        fine = self._fine_grid(chosen, image)
        if fine is not None:
            others.append((fine.spacing_mm, fine.network, min(self.overlap, FINE_GRID_OVERLAP)))
            chosen["fine_grid_mm"] = fine.spacing_mm
        for other_spacing, other_network, overlap in others:
            grids.append(self._other_grid(canonical, modality, other_spacing, other_network, overlap, turn, timings))
        t = time.perf_counter()
        # outside its head crop a grid counts as background (the rule of both functions outside a source)
        sources = [(probs, box.cropped_affine(affine)) for probs, box, affine in grids]
        labels = argmax_to_grid(sources, out_shape, out_affine)
        beyond = None  # output voxels beyond the box the scanned voxels fill, where the scan holds unscanned ones
        if outside is not None:
            field_of_view = BoundingBox.around(~outside)
            beyond = beyond_box(out_shape, out_affine, field_of_view, image.affine)
        post_img = None
        if posteriors:  # their argmax is the labels before the clean-up
            post_img = _posterior_image(sources, image, out_shape, out_affine, beyond)
        if beyond is not None:  # nothing was scanned there: background in the labels and, once the labels are read
            labels[beyond] = 0  # from them, in the working grids, so the volumes, QC and hemispheres count none of it
            background_beyond(sources, field_of_view, image.affine)
        timings["resample_s"] = time.perf_counter() - t
        if self.cleanup:  # the posteriors stay the network's; only the labels lose their islands
            t = time.perf_counter()
            labels = remove_islands(labels)
            timings["cleanup_s"] = time.perf_counter() - t
        label_img = image.with_data(labels.astype(np.uint8), out_affine).to_nifti(np.uint8)
        volumes = soft_volumes(sources)
        hemispheres = hemi_img = None
        if self.hemispheres:  # the plane from the first working grid; the cleaned labels' sides on the output grid
            t = time.perf_counter()
            try:
                plane = midsagittal_plane(*sources[0])
                hemispheres = {"plane": plane.as_dict(), **hemisphere_volumes(sources, plane)}
                hemi_img = image.with_data(hemisphere_map(labels, out_affine, plane), out_affine).to_nifti(np.uint8)
            except NoMidsagittalPlane as reason:
                warnings.append(f"hemispheres not split: {reason}")
            timings["hemispheres_s"] = time.perf_counter() - t
        qc = self._qc(first_grid, volumes)
        edges = brain_at_edges(labels, out_affine, outside=beyond)
        if edges:  # a slab's skull and scalp are a thin ring: too little of them says nothing about stripping
            warnings.append(coverage_warning(edges))
            stripped = None
        else:
            stripped = looks_skull_stripped(volumes)
        if stripped:
            warnings.append("input looks skull-stripped: dura, vessel, skull and head volumes are not meaningful")
        timings["total_s"] = time.perf_counter() - start
        return SegmentationResult(label_img, volumes, qc, modality, {k: round(v, 3) for k, v in timings.items()},
                                  post_img, image.path, warnings=warnings, expert=chosen, skull_stripped=stripped,
                                  brain_at_edges=edges, bias_corrected=corrected, pose=pose, hemispheres=hemispheres,
                                  hemisphere_map=hemi_img,
                                  signature=None if signature is None else signature_as_list(signature))

    def output_grid(self, image: Image) -> tuple[tuple[int, ...], np.ndarray]:
        """The grid the outputs come on: the scan's own, or with ``voxel_size`` an isotropic grid of that many mm
        over the scan's field of view, along the scan's axes (e.g. a thick-slice scan's anatomy at 1 mm)."""
        if self.voxel_size is None:
            return image.shape, image.affine
        shape, affine = grid_for_spacing(image.shape, image.affine, float(self.voxel_size))
        if np.prod(shape, dtype=np.float64) > MAX_VOXELS:
            raise SynthSegError(f"a {self.voxel_size} mm output grid over this scan would hold "
                                f"{np.prod(shape, dtype=np.float64) / 1e6:.0f} M voxels ({'x'.join(map(str, shape))}), "
                                f"above the {MAX_VOXELS / 1e6:.0f} M-voxel memory budget; choose a larger voxel size",
                                image.path or "<array>")
        return shape, affine

    def routing_signature(self, x: Any, affine: np.ndarray | None = None) -> np.ndarray:
        """The contrast signature that routes an MR scan among the experts (as :meth:`segment` reads it):
        mean normalised intensity per ``SIGNATURE_IDS`` structure under one pass of the general network."""
        image = self._as_image(x, affine)
        self._check_field_of_view(image)
        canonical = to_canonical(image.with_data(self._values(image, "mr")[0]))
        if self.bias_correct:
            canonical = self._bias_corrected(canonical)[0]
        spacing = float(self.card["spacing_mm"])
        work, _, _ = self._prepare(self._antialiased(canonical, spacing), "mr", spacing)
        return self._first_pass(work)[1]

    # ------------------------------------------------------------------ steps
    @classmethod
    def _as_image(cls, x: Any, affine: np.ndarray | None) -> Image:
        image = cls._to_image(x, affine)
        values = looks_like_label_map(image.data)
        if values is not None:
            raise SynthSegError(f"input looks like a label map ({values} distinct integer values), not a scan",
                                image.path or "<array>")
        return image

    @staticmethod
    def _to_image(x: Any, affine: np.ndarray | None) -> Image:
        if isinstance(x, Image):
            validate_image(x)
            return x
        if isinstance(x, (str, Path)):
            return load_image(x)
        if isinstance(x, nib.spatialimages.SpatialImage):
            header = x.header if isinstance(x.header, nib.Nifti1Header) else None
            image = Image(np.asanyarray(x.dataobj), np.asarray(x.affine, float), header)
        elif isinstance(x, np.ndarray):
            if affine is None:
                raise SynthSegError("an array input needs its affine (segment(array, affine))")
            image = Image(x, np.asarray(affine, float))
        else:
            raise SynthSegError(f"cannot segment an object of type {type(x).__name__}")
        validate_image(image)
        return image

    @staticmethod
    def _values(image: Image, requested: str) -> tuple[np.ndarray, str, list[str], np.ndarray | None]:
        """The scan's values as the network reads them (float32; NaN/Inf and an MR scan's out-of-view fill as
        background, a few corrupt voxels clipped to the others' range, CT in Hounsfield units), its modality
        (``requested``, or detected for ``auto``), the warnings so far, and the voxels beyond what was scanned
        (NaN/Inf and fills; None when there are none), whose border is an edge of the field of view."""
        warnings = list(image.meta.get("warnings", []))
        data, note = finite_values(image.data)
        outside = None
        if note:
            warnings.append(note)
            outside = ~np.isfinite(image.data)
        data, note = clip_outliers(data)
        if note:
            warnings.append(note)
        modality = detect_modality(data, requested)
        scale = ct_scale(data) if modality == "ct" else "hu"
        if scale != "hu":
            data = to_hounsfield(data, scale)
            warnings.append(f"CT values read as {CT_SCALE_NAMES[scale]} and converted to Hounsfield units")
        if modality == "mr":
            filled, note = fill_as_background(data)
            if note:
                warnings.append(note)
                changed = filled != data  # the fill: every voxel of it takes another value
                outside = changed if outside is None else outside | changed
            data = filled
        return data, modality, warnings, outside

    def _fine_enough(self, image: Image) -> bool:
        """Whether a scan's voxels are small enough for its expert's fine grid (``FINE_SCAN_MAX_SPACING_MM``),
        test-time augmentation being on."""
        return self.tta and float(image.spacing.max()) <= FINE_SCAN_MAX_SPACING_MM

    def _fine_grid(self, chosen: dict | None, image: Image) -> FineGrid | None:
        """The fine working grid of the expert that segments the scan, when it has one and the scan is fine enough."""
        if chosen is None or not self._fine_enough(image):
            return None
        return next((e.fine for e in self.loaded.experts if e.contrast == chosen["contrast"]), None)

    def _finest_spacing(self, image: Image) -> float:
        """The finest working grid the scan may be segmented on (before the first pass has chosen its network)."""
        spacings = [factor * float(self.card["spacing_mm"])
                    for factor in (TTA_SPACING_FACTORS if self.tta else TTA_SPACING_FACTORS[:1])]
        if self._fine_enough(image):
            spacings += [e.fine.spacing_mm for e in self.loaded.experts if e.fine is not None]
        return min(spacings)

    def _check_field_of_view(self, image: Image) -> None:
        """Refuse a scan far larger than a head (``MAX_WORKING_VOXELS``), most often a header in other units."""
        spacing = self._finest_spacing(image)
        shape, _ = grid_for_spacing(image.shape, image.affine, spacing)
        voxels = float(np.prod(shape, dtype=np.float64))
        if voxels > MAX_WORKING_VOXELS:
            size = " x ".join(f"{n * v:.0f}" for n, v in zip(image.shape, voxel_sizes(image.affine)))
            raise SynthSegError(f"field of view {size} mm is far larger than a head ({voxels / 1e6:.0f} M voxels on "
                                f"the {spacing:g} mm working grid, at most {MAX_WORKING_VOXELS / 1e6:.0f} M): check "
                                "the voxel size in the header, or crop the scan to the head", image.path or "<array>")

    def _check_head_size(self, crop_shape: Sequence[int], spacing: float, image: Image) -> None:
        """Refuse a head crop (``crop_shape`` voxels of ``spacing`` mm) too large to segment (``MAX_HEAD_VOXELS``
        on the finest working grid), e.g. a body scan."""
        voxels = float(np.prod(crop_shape, dtype=np.float64)) * (spacing / self._finest_spacing(image)) ** 3
        if voxels > MAX_HEAD_VOXELS:
            size = " x ".join(f"{n * spacing:.0f}" for n in crop_shape)
            raise SynthSegError(f"what looks like the head spans {size} mm ({voxels / 1e6:.0f} M voxels on the working "
                                f"grid, at most {MAX_HEAD_VOXELS / 1e6:.0f} M): crop the scan to the head",
                                image.path or "<array>")

    def _check_memory(self, image: Image, out_shape: Sequence[int], crop_shape: Sequence[int], spacing: float,
                      posteriors: bool, mark: tuple[float, float]) -> None:
        """Go on when the segmentation fits in the memory it may take since ``mark`` (:mod:`.memory`) or the system
        does not say; raise :class:`_OnePassFits` when only one pass fits, test-time augmentation being on; refuse
        the scan when not even one pass fits."""
        free = room_since(mark)
        if free is None:
            return
        scan = max(float(image.data.size), float(np.prod(out_shape, dtype=np.float64)))
        crop = float(np.prod(crop_shape, dtype=np.float64))  # on this, the model's own grid
        need = memory_needed(scan, crop * (spacing / self._finest_spacing(image)) ** 3, self.tta, posteriors)
        if need <= free:
            return
        one_pass = memory_needed(scan, crop, False, posteriors)
        if self.tta and one_pass <= free:
            raise _OnePassFits(image, f"test-time augmentation skipped for lack of memory (it needs about "
                                      f"{need / 1e9:.1f} GB, {free / 1e9:.1f} GB is available): one pass")
        raise SynthSegError(f"segmenting this scan needs about {one_pass / 1e9:.1f} GB of memory "
                            f"({scan / 1e6:.0f} M voxels, a head crop of {crop / 1e6:.1f} M on the working grid) but "
                            f"{free / 1e9:.1f} GB is available: free memory, or crop or downsample the scan",
                            image.path or "<array>")

    def _bias_corrected(self, canonical: Image) -> tuple[Image, str | None]:
        """The canonical MR scan divided by the bias field N4 fits inside its brain and CSF (the brain structures under
        one straight pass of the general network, grown by ``N4_MASK_MARGIN_MM``), or unchanged and why not."""
        unsuitable = n4_unsuitable(canonical.data)
        if unsuitable:  # before the network pass that finds the brain, which it would waste
            return canonical, unsuitable
        spacing = float(self.card["spacing_mm"])
        work, box, affine = self._prepare(self._antialiased(canonical, spacing), "mr", spacing)
        labels = self._predict(work, self.loaded.network, (False,)).argmax(0)
        margin = max(1, int(round(N4_MASK_MARGIN_MM / spacing)))
        brain = ndimage.binary_dilation(np.isin(labels, BRAIN_STRUCTURE_IDS), iterations=margin)
        full = pad_to_shape(brain.astype(np.float32), box, fill=0.0)
        mask = resample_to_grid(full, affine, canonical.shape, canonical.affine, order=0) > 0.5
        data, skipped = bias_corrected(canonical.data, canonical.spacing, mask)
        return canonical.with_data(data), skipped

    @staticmethod
    def _antialiased(canonical: Image, spacing: float) -> Image:
        """The canonical float32 scan blurred for down-sampling to ``spacing`` mm
        (sigma = (factor - 1) / 2 voxels)."""
        sigmas = [max(0.0, (spacing / s - 1) / 2) for s in canonical.spacing]
        if max(sigmas) < 0.1:
            return canonical
        return canonical.with_data(blur(torch.from_numpy(canonical.data), sigmas).numpy())

    @staticmethod
    def _prepare(canonical: Image, modality: str, spacing: float, turn: tuple[np.ndarray, np.ndarray] | None = None,
                 window: Sequence[int] | None = None, overlap: float = 0.5
                 ) -> tuple[np.ndarray, BoundingBox, np.ndarray]:
        """From :meth:`_antialiased`'s image: the normalised working-grid array (``spacing`` mm) cropped to
        the head (:func:`head_crop`, fitted to sliding windows of ``window`` voxels overlapping by ``overlap``), the
        crop box and the grid's affine; with ``turn`` (rotation in the grid's voxel frame, head centre in world mm)
        the grid is turned with the head (:func:`synthseg.inference.pose.turned_grid`)."""
        shape, affine = grid_for_spacing(canonical.shape, canonical.affine, spacing)
        low = float(canonical.data.min())
        if turn is None:
            work = resample_to_grid(canonical.data, canonical.affine, shape, affine, order=1, fill=low)
        else:
            rotation, centre = turn
            shape, affine = turned_grid(shape, affine, rotation, (np.linalg.inv(affine) @ np.append(centre, 1))[:3])
            # corners beyond the scan's field of view: filled like its air, not an outlier
            fill = float(robust_quantiles(torch.from_numpy(canonical.data), (MR_PERCENTILES[0],))[0])
            # between the scan's voxels almost everywhere: cubic blurs it less than linear (IXI turned 3-11°:
            # mean-12 -0.0032 linear, -0.0006 cubic; benchmarks/RESULTS.md, "Real scans acquired differently"),
            # clipped so that it does not overshoot the scan's own range
            work = resample_to_grid(canonical.data, canonical.affine, shape, affine, order=3, fill=fill)
            np.clip(work, low, float(canonical.data.max()), out=work)
        work = normalize(work, modality)
        box = head_crop(work, window, overlap)
        return work[box.slices], box, affine

    def _read_pose(self, probs: np.ndarray, box: BoundingBox, affine: np.ndarray, spacing: float
                   ) -> tuple[np.ndarray, float, np.ndarray] | None:
        """The head's turn from the model's reference pose under the labels of ``probs`` (the head crop ``box``
        of the grid ``affine``): the rotation in the grid's voxel frame, the fit's RMS residual (mm) and the
        head's centre (world mm); ``None`` when too few structures are found."""
        offset = np.array([s.start for s in box.slices], dtype=float)
        centroids = structure_centroids(probs.argmax(0), spacing)
        reference = self.card["pose"]
        fit = head_rotation(dict(zip(reference["ids"], reference["centroids_mm"])), centroids)
        if fit is None:
            return None
        centre_vox = np.mean(list(centroids.values()), axis=0) / spacing + offset
        return fit[0], fit[1], (affine @ np.append(centre_vox, 1))[:3]

    def _settle_pose(self, probs: np.ndarray, antialiased: Image, modality: str, spacing: float,
                     network: torch.nn.Module, box: BoundingBox, affine: np.ndarray
                     ) -> tuple[np.ndarray, dict | None, tuple[np.ndarray, np.ndarray] | None]:
        """The first grid's probabilities, the head's pose and the working grids' turn (``None``: straight).

        A head turned more than ``POSE_TURN_DEGREES`` whose constellation fits the reference within
        ``MAX_RESIDUAL_MM`` is segmented again on a grid turned with it. The network reads a tilted head
        toward the training pose, so the first read falls short of the turn; the turned grid's labels are read
        again, and while a read differs from the turn applied by more than ``POSE_REREAD_DEGREES`` the grid is
        turned anew, ``POSE_READS`` reads at most. A slab (the brain cut by the field of view on opposite sides)
        stays straight: its structures are cut, their centroids move, and the turn read from them is an artefact
        (60 mm axial slabs of IXI and bert: 11 of 22 turned, mean-12 0.052 lower than straight;
        benchmarks/RESULTS.md)."""
        if not self.pose or not self.card.get("pose"):
            return probs, None, None
        fit = self._read_pose(probs, box, affine, spacing)
        if fit is None:
            return probs, None, None
        rotation, residual, centre = fit
        reads = [rotation_degrees(rotation)]
        turn = None
        if (reads[0] > POSE_TURN_DEGREES and residual <= MAX_RESIDUAL_MM  # a slab read last: only when it matters
                and not cut_on_opposite_sides(brain_at_edges(probs.argmax(0), box.cropped_affine(affine)))):
            while True:
                turn = (rotation, centre)
                probs = self._predict_turned(antialiased, modality, spacing, turn, network, box, affine)
                if len(reads) == POSE_READS:
                    break
                fit = self._read_pose(probs, box, affine, spacing)
                if fit is None or fit[1] > MAX_RESIDUAL_MM:
                    break  # no trustworthy read: keep the turn applied
                if rotation_degrees(fit[0].T @ rotation) <= POSE_REREAD_DEGREES:
                    break  # the read agrees with the turn applied
                rotation, residual, centre = fit
                reads.append(rotation_degrees(rotation))
        pose = {"degrees": round(reads[-1], 1), "residual_mm": round(residual, 1), "turned": turn is not None,
                "reads": [round(r, 1) for r in reads]}
        return probs, pose, turn

    def _other_grid(self, canonical: Image, modality: str, spacing: float, network: torch.nn.Module, overlap: float,
                    turn: tuple[np.ndarray, np.ndarray] | None, timings: dict[str, float]
                    ) -> tuple[np.ndarray, BoundingBox, np.ndarray]:
        """A test-time working grid after the first: ``network``'s probabilities on the head crop of a ``spacing`` mm
        grid (windows overlapping by ``overlap``; turned with the head when the first grid's pose says so), the crop
        and the grid's affine."""
        t = time.perf_counter()
        antialiased = self._antialiased(canonical, spacing)
        # unlike the first grid's, this crop gives up the part of its margin of air that would cost a row of
        # windows (head_crop): the 1.8 mm grid of a 1 mm head, 8 windows -> 2 a pass. Not the first grid: it
        # routes the scan (its signatures calibrated on full crops) and reads the pose, and on the skull-stripped
        # bert a window flush with the brain cost it 0.0013 (benchmarks/RESULTS.md, session 64)
        work, box, affine = self._prepare(antialiased, modality, spacing, window=self.window, overlap=overlap)
        timings["preprocess_s"] += time.perf_counter() - t
        t = time.perf_counter()
        if turn is not None:
            probs = self._predict_turned(antialiased, modality, spacing, turn, network, box, affine, overlap,
                                         self.window)
        else:
            probs = self._predict(work, network, self._flips(), overlap)
        timings["inference_s"] += time.perf_counter() - t
        return probs, box, affine

    def _predict_turned(self, antialiased: Image, modality: str, spacing: float, turn: tuple[np.ndarray, np.ndarray],
                        network: torch.nn.Module, box: BoundingBox, affine: np.ndarray, overlap: float | None = None,
                        window: Sequence[int] | None = None) -> np.ndarray:
        """Probabilities from a working grid turned with the head, brought back (linearly) onto the
        straight grid's head crop (``box`` of the grid ``affine``), where everything downstream reads them;
        ``window``: its crop fitted to the sliding windows, as :meth:`_other_grid`'s."""
        turned, turned_box, turned_affine = self._prepare(antialiased, modality, spacing, turn, window,
                                                          self.overlap if overlap is None else overlap)
        probs = self._predict(turned, network, self._flips(), overlap)
        probs[0] -= 1.0  # background minus one: outside the turned crop it fills with 0, i.e. background 1
        crop = tuple(b - a for a, b in zip(box.start, box.stop))
        back = resample_to_grid(probs, turned_box.cropped_affine(turned_affine), crop, box.cropped_affine(affine),
                                order=1, fill=0.0)
        back[0] += 1.0
        return back

    def _infer(self, work: np.ndarray, modality: str
               ) -> tuple[np.ndarray, dict | None, np.ndarray | None, torch.nn.Module]:
        """Probabilities from the general model or, when the model has one for this scan's contrast,
        its expert; which expert ran (``{"contrast", "correlation"}``, ``{"contrast", "named": True}`` when
        ``contrast`` named it, ``None`` = general); the contrast signature that chose it (``None`` when no
        signature was needed); and the network."""
        passes = self._flips()
        general, experts = self.loaded.network, self.loaded.experts
        if self.contrast != "auto":  # named by the user: no first pass, no signature
            expert = next(e for e in experts if e.contrast == self.contrast)
            named = {"contrast": expert.contrast, "named": True}
            return self._predict(work, expert.network, passes), named, None, expert.network
        first, signature = None, None
        if experts and modality != "ct":  # MR experts are chosen from one pass of the general model
            first, signature = self._first_pass(work)
        expert, correlation = choose_expert(experts, modality, signature, self.loaded.classifier)
        if expert is not None:
            chosen = {"contrast": expert.contrast, "correlation": round(correlation, 3)}
            return self._predict(work, expert.network, passes), chosen, signature, expert.network
        if first is None:
            return self._predict(work, general, passes), None, None, general
        if len(passes) > 1:  # complete the general model's mirrored pass
            first = (first + self._predict(work, general, passes[1:])) / 2
        return first, None, signature, general

    def _first_pass(self, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One unmirrored pass of the general network on a working grid: its probabilities and the
        contrast signature under its labels, which routes the scan."""
        first = self._predict(work, self.loaded.network, self._flips()[:1])
        return first, contrast_signature(work, first.argmax(0))

    def _flips(self) -> tuple[bool, ...]:
        """Sliding-window passes per working grid: ``True`` runs on the left/right mirrored input. Volumes per
        hemisphere always get the mirrored pass: one pass alone draws some structures larger on one side than on
        the other (IXI pallidum: mean asymmetry index +0.19; with the mirror +0.003, benchmarks/RESULTS.md)."""
        return (False, True) if self.tta or self.hemispheres else (False,)

    @torch.no_grad()
    def _predict(self, work: np.ndarray, network: torch.nn.Module, flips: tuple[bool, ...],
                 overlap: float | None = None) -> np.ndarray:
        """Softmax probabilities ``(17, X, Y, Z)`` on the working grid (float32, CPU), averaged over one
        sliding-window pass per entry of ``flips`` (``True``: on the left/right mirrored input), the windows
        overlapping by ``overlap`` (default: the segmenter's)."""
        from monai.inferers import sliding_window_inference

        tensor = torch.from_numpy(np.ascontiguousarray(work))[None, None]
        window_overlap = self.overlap if overlap is None else overlap

        def run(device: torch.device) -> torch.Tensor:
            net = network.to(device)
            dtype = autocast_dtype(self.amp, device)

            def predictor(batch: torch.Tensor) -> torch.Tensor:
                if dtype is None:
                    return torch.softmax(net(batch), dim=1)
                with torch.autocast(device.type, dtype=dtype):
                    logits = net(batch)
                return torch.softmax(logits.float(), dim=1)

            total = 0
            for flip in flips:
                x = tensor.flip(2) if flip else tensor
                out = sliding_window_inference(x, self.window, 1, predictor, overlap=window_overlap, mode="gaussian",
                                               sw_device=device, device=torch.device("cpu"))
                total = total + (out.flip(2) if flip else out)
            return total / len(flips)

        try:
            probs = run(self.device)
        except torch.cuda.OutOfMemoryError:
            print(f"GPU out of memory on {self.device} for a {tuple(work.shape)} working grid; "
                  "falling back to CPU", flush=True)
            torch.cuda.empty_cache()
            self.device = torch.device("cpu")
            probs = run(self.device)
        return probs[0].float().numpy()

    def _qc(self, probs: np.ndarray, volumes: dict[str, float]) -> dict[str, dict]:
        """Mean confidence inside each predicted structure and a volume plausibility flag."""
        winner = probs.argmax(0)
        confidence = probs.max(0)
        ranges = self.card.get("volume_ranges_ml", {})
        qc = {}
        for s in STRUCTURES[1:]:
            mask = winner == s.id
            entry: dict[str, Any] = {"mean_confidence": round(float(confidence[mask].mean()), 3) if mask.any()
                                     else 0.0}
            low_high = ranges.get(str(s.id))
            volume = volumes[s.short]
            if low_high:
                lo, hi = 0.5 * low_high[0], 1.5 * low_high[1]
                entry["volume_flag"] = "low" if volume < lo else "high" if volume > hi else "ok"
                entry["expected_ml"] = [round(lo, 1), round(hi, 1)]
            qc[s.short] = entry
        return qc


class _OnePassFits(Exception):
    """Raised inside :meth:`Segmenter._segment` when test-time augmentation would not fit in memory but one pass
    would: :meth:`Segmenter.segment` starts again with one pass, the first attempt's arrays freed."""

    def __init__(self, image: Image, warning: str) -> None:
        super().__init__(warning)
        self.image = image


def looks_skull_stripped(volumes: dict[str, float]) -> bool:
    """Whether the segmented skull and scalp are too small for an unstripped head (see ``STRIPPED_HEAD_RATIO``)."""
    return volumes["Skull"] + volumes["Head"] < STRIPPED_HEAD_RATIO * volumes["ICV"]


def background_beyond(sources: Sequence[tuple[np.ndarray, np.ndarray]], box: BoundingBox,
                      box_affine: np.ndarray) -> None:
    """Each working grid's ``(probs, affine)`` made background, in place, where its voxels lie beyond ``box`` of the
    grid ``box_affine`` (the scanned part of the scan's)."""
    for probs, affine in sources:
        beyond = beyond_box(probs.shape[1:], affine, box, box_affine)
        probs[:, beyond] = 0.0
        probs[0, beyond] = 1.0


def soft_volumes(sources: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Structure volumes (ml) as the network's expected volumes: each working grid's class probabilities
    ``(probs, affine)`` summed and multiplied by its voxel volume, averaged over the grids. Partial voxels count,
    as in SynthSeg, and the figure does not depend on the grid the labels are written on; closer to the truth
    than counting labelled voxels (held-out renders, default TTA: mean error 14.8 → 13.2 % at 1 mm, 18.1 → 15.5 %
    with 6 mm slices; benchmarks/RESULTS.md, "Structure volumes against the truth")."""
    total = np.zeros(NUM_CLASSES)
    for probs, affine in sources:
        voxel_ml = voxel_volume_ml(affine)
        total += probs.reshape(probs.shape[0], -1).sum(1, dtype=np.float64) * voxel_ml
    total /= len(sources)
    volumes = {s.short: round(float(total[s.id]), 3) for s in STRUCTURES[1:]}
    volumes["ICV"] = round(float(total[list(INTRACRANIAL)].sum()), 3)
    return volumes


def _posterior_image(sources: Sequence[tuple[np.ndarray, np.ndarray]], image: Image, shape: tuple[int, ...],
                     affine: np.ndarray, beyond: np.ndarray | None = None) -> nib.Nifti1Image:
    """The working grids' mean probabilities on the output grid (``shape``, ``affine``) as a 4D uint8 image
    (value/255 via scl_slope) with the input's header, quantised block by block: no float copy of the whole
    17-channel volume is ever held. Stored in Fortran order, as NIfTI lays it out on disk, so saving it copies
    nothing (a C-ordered 256³ map took 4 s more to save). Voxels ``beyond`` the field of view are background."""
    data = np.zeros((*shape, NUM_CLASSES), dtype=np.uint8, order="F")
    data[..., 0] = 255  # background where no working grid reaches
    for where, block in probability_slabs(sources, shape, affine):
        np.multiply(block, 255, out=block)
        data[where] = np.moveaxis(np.clip(np.rint(block, out=block), 0, 255, out=block), 0, -1)
    if beyond is not None:
        data[beyond] = 0
        data[beyond, 0] = 255
    out = image.with_data(data[..., 0], affine).to_nifti(np.uint8)
    nifti = type(out)(data, out.affine, out.header)
    nifti.header.set_slope_inter(1 / 255.0, 0.0)
    nifti.header.set_intent("none")
    return nifti


def segment(x: Any, *, model: str | Path | None = None, device: str = "auto", tta: bool = True,
            posteriors: bool = False, affine: np.ndarray | None = None, **options) -> SegmentationResult:
    """One-shot form of :class:`Segmenter` (loads the model for this call only)."""
    return Segmenter(model=model, device=device, tta=tta, **options).segment(x, affine=affine, posteriors=posteriors)


__all__ = ["Segmenter", "SegmentationResult", "segment"]
