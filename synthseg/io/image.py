"""One in-memory image type, the readers that fill it, validation, and atomic writing.

Formats: NIfTI (``.nii``, ``.nii.gz``, and ``.hdr``/``.img`` pairs such as SPM writes, gzipped or not), FreeSurfer
``.mgz``/``.mgh`` (nibabel) and a DICOM series given as a folder (SimpleITK). Every problem is a
:class:`SynthSegError` naming the file.
"""

from __future__ import annotations

import gzip
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from synthseg.errors import SynthSegError

# A NIfTI pair's two files, gzipped or not
_PAIR_HEADERS, _PAIR_DATA = (".hdr", ".hdr.gz"), (".img", ".img.gz")
PAIR_SUFFIXES = _PAIR_HEADERS + _PAIR_DATA
# The files a folder's images are found by: a pair is listed once, by its header
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh") + _PAIR_HEADERS
# What an input file may be called: the pair's data file too
INPUT_SUFFIXES = IMAGE_SUFFIXES + _PAIR_DATA
# voxel sizes outside this range (mm) mean a header in other units (m, cm, µm), not a scan
VOXEL_SIZE_RANGE_MM = (0.01, 20.0)
MIN_SLICES = 3  # fewer along an axis is a slice or a strip, not a volume the 3D network can read
# Inference holds about 13 bytes per input voxel at its peak (data, a float32 copy, labels):
# 300 M voxels ≈ 4 GB. Larger inputs are refused from their header, before any data is read.
MAX_VOXELS = 300_000_000


@dataclass(frozen=True)
class Image:
    """A 3D array in a world frame: ``world = affine @ [i, j, k, 1]`` (RAS+, mm).

    ``header`` is the original NIfTI header when there is one, so outputs keep its codes.
    """

    data: np.ndarray
    affine: np.ndarray
    header: Any = None
    path: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def spacing(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def with_data(self, data: np.ndarray, affine: np.ndarray | None = None) -> "Image":
        """Same header and provenance, new voxels (and optionally a new grid)."""
        return replace(self, data=data, affine=self.affine if affine is None else np.asarray(affine, float))

    def to_nifti(self, dtype: Any = None) -> nib.Nifti1Image:
        """A NIfTI image of this grid and data with the input's header (NIfTI-2 stays NIfTI-2), its scaling dropped."""
        data = self.data if dtype is None else self.data.astype(dtype, copy=False)
        if isinstance(self.header, nib.Nifti1Header):  # NIfTI-2's header is a subclass
            header = self.header.copy()
            qcode, scode = int(header["qform_code"]), int(header["sform_code"])
            kind = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
            out = kind(data, self.affine, header)
            out.set_qform(self.affine, code=qcode or 1)
            out.set_sform(self.affine, code=scode or 1)
        else:
            out = nib.Nifti1Image(data, self.affine)
            out.set_qform(self.affine, code=1)
            out.set_sform(self.affine, code=1)
        out.set_data_dtype(data.dtype)
        out.header["scl_slope"], out.header["scl_inter"] = np.nan, np.nan
        return out


def is_image_path(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(IMAGE_SUFFIXES)


def strip_image_suffix(name: str) -> str:
    """``name`` without its image suffix (``sub01.nii.gz`` → ``sub01``; other names unchanged)."""
    suffix = next((s for s in INPUT_SUFFIXES if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)]


def is_dicom_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() == ".dcm" or _has_dicom_magic(p) for p in path.iterdir()
                                 if p.is_file())


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_image(path: str | Path, *, validate: bool = True, labels: bool = False,
               max_voxels: int | None = MAX_VOXELS) -> Image:
    """Read a 3D image (or a 4D file with one frame) and check it is usable.

    ``labels=True`` skips checks that make no sense for label maps (constant value is allowed).
    Images with more than ``max_voxels`` voxels are refused from the header alone.
    """
    path = Path(path)
    if not path.exists():
        raise SynthSegError("no such file or folder", path)
    if path.is_dir():
        if not is_dicom_folder(path):
            raise SynthSegError("folder holds no DICOM series", path)
        image = _load_dicom(path)
    else:
        if not os.access(path, os.R_OK):
            raise SynthSegError("file is not readable (permission denied)", path)
        if path.stat().st_size == 0:
            raise SynthSegError("file is empty (0 bytes)", path)
        if not path.name.lower().endswith(INPUT_SUFFIXES):
            raise SynthSegError(f"unsupported format; expected one of {', '.join(INPUT_SUFFIXES)} "
                                "or a DICOM folder", path)
        if path.name.lower().endswith(PAIR_SUFFIXES):  # nibabel reads a lone header lazily, then fails on the data
            pair = [Path(f.filename) for f in nib.Nifti1Pair.filespec_to_file_map(str(path)).values()]
            missing = [f.name for f in pair if not f.exists()]
            if missing:
                suffix = missing[0][len(strip_image_suffix(missing[0])):]
                raise SynthSegError(f"the {suffix} file of this header/data pair is missing", path)
        image = _load_nibabel(path, max_voxels)
    if validate:
        validate_image(image, labels=labels)
    return image


def read_label_map(path: str | Path, *, allow_empty: bool = False) -> Image:
    """Load a label map and check it holds non-negative integer codes (and, unless ``allow_empty``, some
    label); returns it with int32 data."""
    image = load_image(path, labels=True)
    data = image.data
    if data.dtype.kind == "f" and not np.all(np.mod(data, 1) == 0):
        raise SynthSegError("label map has non-integer values; is this an intensity image?", path)
    if data.min() < 0:
        raise SynthSegError(f"label map has negative codes (min {data.min()})", path)
    if data.max() == 0 and not allow_empty:
        raise SynthSegError("label map is empty (all voxels are 0)", path)
    return image.with_data(data.astype(np.int32))


def _load_nibabel(path: Path, max_voxels: int | None = None) -> Image:
    try:
        with _NibabelRepairs() as repairs:
            img = nib.load(str(path))
        header = img.header
        shape = tuple(int(n) for n in img.shape)
    except Exception as error:  # nibabel raises many types for garbage files
        raise SynthSegError(f"not a readable image ({_short(error)})", path) from None
    if isinstance(img, nib.AnalyzeImage) and not isinstance(img, (nib.Nifti1Pair, nib.Nifti2Pair)):
        raise SynthSegError("Analyze 7.5 image: its header stores no orientation, so left and right cannot be told "
                            "apart; convert it to NIfTI with its orientation checked", path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        what = f"{len(shape)}D" + (f" with {shape[3]} frames" if len(shape) == 4 else "")
        raise SynthSegError(f"image is {what} {shape}; a single 3D volume is required", path)
    if np.prod(shape) == 0:
        raise SynthSegError(f"image has zero voxels (shape {shape})", path)
    if max_voxels is not None and np.prod(shape, dtype=np.float64) > max_voxels:
        size = "x".join(map(str, shape))
        raise SynthSegError(f"image has {np.prod(shape, dtype=np.float64) / 1e6:.0f} M voxels ({size}), above the "
                            f"{max_voxels / 1e6:.0f} M-voxel memory budget; crop or downsample it first", path)
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise SynthSegError(f"unsupported voxel type {dtype} (e.g. RGB); a scalar image is required", path)
    try:
        data = np.asanyarray(img.dataobj)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as error:
        raise SynthSegError(f"file is truncated or corrupt ({_short(error)})", path) from None
    data = np.asarray(data).reshape(shape)
    return Image(data, np.asarray(img.affine, dtype=float), header=header if isinstance(
        header, nib.Nifti1Header) else None, path=path, meta={"warnings": repairs.messages})


class _NibabelRepairs(logging.Handler):
    """Collects the header repairs nibabel makes while loading (e.g. negative voxel sizes made
    positive), so they reach the user as warnings instead of stray log lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.logger = logging.getLogger("nibabel.global")

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"header repaired on load: {record.getMessage()}")

    def __enter__(self) -> "_NibabelRepairs":
        self.previous = (self.logger.handlers[:], self.logger.propagate)
        self.logger.handlers[:] = [self]
        self.logger.propagate = False
        return self

    def __exit__(self, *exc) -> None:
        self.logger.handlers[:], self.logger.propagate = self.previous


def _load_dicom(path: Path) -> Image:
    import SimpleITK as sitk

    try:
        reader = sitk.ImageSeriesReader()
        series = reader.GetGDCMSeriesIDs(str(path))
        if not series:
            raise SynthSegError("folder holds no DICOM series", path)
        if len(series) > 1:
            raise SynthSegError(f"folder holds {len(series)} DICOM series; give one series per folder", path)
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
        itk = reader.Execute()
    except RuntimeError as error:
        raise SynthSegError(f"unreadable DICOM series ({_short(error)})", path) from None
    if itk.GetNumberOfComponentsPerPixel() != 1:
        raise SynthSegError("DICOM series is not a scalar image", path)
    data = sitk.GetArrayFromImage(itk).transpose(2, 1, 0)  # ITK arrays are (k, j, i)
    direction = np.array(itk.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(itk.GetSpacing())
    affine[:3, 3] = itk.GetOrigin()
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # ITK's LPS world → RAS
    if data.ndim != 3:
        raise SynthSegError(f"DICOM series is {data.ndim}D; a 3D volume is required", path)
    return Image(data, affine, header=None, path=path)


# Share of a label map's foreground voxels equal to all six neighbours: 0.33-0.64 for the training templates,
# FreeSurfer's aseg, DLMUSE at 2 mm and this tool's outputs; 0.005-0.17 for IXI, bert and chris scans stored with
# 16-64 grey levels (noise changes the level at nearly every voxel), 0.24-0.33 with 8
LABEL_MAP_FLAT_SHARE = 0.2


def strided_sample(data: np.ndarray, limit: int) -> np.ndarray:
    """At most about ``limit`` of an array's values, every n-th in C order, without copying the array (reshaping a
    Fortran-ordered volume, as nibabel's often are, would copy all of it)."""
    data = np.asarray(data)
    step = max(1, data.size // limit)
    if data.flags.c_contiguous:
        return data.reshape(-1)[::step]
    return data[np.unravel_index(np.arange(0, data.size, step), data.shape)]


def looks_like_label_map(data: np.ndarray, max_values: int = 64) -> int | None:
    """Number of distinct values if ``data`` looks like a label map, else None: few integer values, and regions of
    one value (``LABEL_MAP_FLAT_SHARE``) — a scan stored with few grey levels is not refused for them."""
    sample = strided_sample(data, 1_000_000)
    if data.dtype.kind == "f":  # NaN/Inf (a scan's out-of-view voxels) say nothing either way
        sample = sample[np.isfinite(sample)]
        if not np.all(np.mod(sample, 1) == 0):
            return None
    if len(np.unique(sample)) > max_values:
        return None
    count = len(np.unique(data[np.isfinite(data)] if data.dtype.kind == "f" else data))
    if count > max_values or flat_share(data) < LABEL_MAP_FLAT_SHARE:
        return None
    return count


def flat_share(data: np.ndarray) -> float:
    """Share of the voxels that differ from the corner voxel (the background) whose six neighbours all hold their
    value (borders left out)."""
    inner = data[1:-1, 1:-1, 1:-1]
    flat = np.ones(inner.shape, dtype=bool)
    for axis in range(3):
        for step in (-1, 1):
            shifted = [slice(1, -1)] * 3
            shifted[axis] = slice(1 + step, data.shape[axis] - 1 + step)
            flat &= data[tuple(shifted)] == inner
    foreground = inner != data.flat[0]
    return float(flat[foreground].mean()) if foreground.any() else 1.0


def validate_image(image: Image, *, labels: bool = False) -> None:
    """Refuse what no segmentation can use: non-3D, empty, constant, NaN/Inf, broken geometry."""
    source = image.path or "<array>"
    data = image.data
    if data.ndim != 3:
        raise SynthSegError(f"image is {data.ndim}D {data.shape}; a single 3D volume is required", source)
    if data.size == 0:
        raise SynthSegError(f"image has zero voxels (shape {data.shape})", source)
    thin = [axis for axis, n in enumerate(data.shape) if n < MIN_SLICES]
    if thin:
        raise SynthSegError(f"image has {data.shape[thin[0]]} slice(s) along axis {thin[0]} (shape {data.shape}); "
                            f"a 3D volume needs at least {MIN_SLICES} along every axis", source)
    if data.dtype.kind not in "biuf":
        raise SynthSegError(f"unsupported voxel type {data.dtype}", source)
    affine = np.asarray(image.affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise SynthSegError("affine is missing or not finite", source)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if np.any(spacing == 0) or abs(np.linalg.det(affine[:3, :3])) < 1e-6 * np.prod(spacing):
        raise SynthSegError("affine is singular (zero or collinear voxel axes)", source)
    low, high = VOXEL_SIZE_RANGE_MM
    if np.any(spacing < low) or np.any(spacing > high):
        text = "x".join(f"{s:.3g}" for s in spacing)
        raise SynthSegError(f"absurd voxel size {text} mm (allowed: {low:g} to {high:g} mm; is the header in "
                            "other units?)", source)
    values = data
    if data.dtype.kind == "f":  # a scan's NaN/Inf voxels are read as background (inference), a label map's are broken
        finite = np.isfinite(data)
        if not finite.all():
            if labels or not finite.any():
                raise SynthSegError(f"image has {int((~finite).sum())} NaN/Inf voxels"
                                    + ("" if labels else ", and no other"), source)
            values = data[finite]
    if not labels and values.min() == values.max():
        raise SynthSegError(f"all {'finite ' if values is not data else ''}voxels have the same value "
                            f"({values.flat[0]})", source)


def save_image(image: Image, path: str | Path, *, dtype: Any = None,
               protect: tuple[Path, ...] = ()) -> Path:
    """Write ``image`` as NIfTI atomically: a temporary file in the target folder, then a rename.

    Refuses to overwrite any path in ``protect`` (the inputs) and writes label maps as uint8
    when asked with ``dtype=np.uint8``.
    """
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise SynthSegError("output must be a .nii or .nii.gz file", path)
    for other in protect:
        if other is not None and _same_file(path, Path(other)):
            raise SynthSegError("output path is the input path; refusing to overwrite an input", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    nifti = image.to_nifti(dtype)
    write_atomic(path, lambda tmp: nib.save(nifti, str(tmp)), suffix=suffix)
    return path


def write_atomic(path: Path, write, suffix: str = "") -> None:
    """Call ``write(tmp_path)`` on a temporary sibling of ``path``, then rename it into place."""
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    except OSError as error:
        raise SynthSegError(f"cannot write to the output folder ({error.strerror})", path) from None
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:160]
