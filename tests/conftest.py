"""Shared fixtures: tiny seeded volumes, the shared data folder (skipped when absent), and a tiny
model trained on the built-in phantom inside the test session."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous in tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_path(*parts: str) -> Path:
    """A path inside ``../shared/data``; the test skips (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None, dtype=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.eye(4) if affine is None else np.asarray(affine, float)
    singular = abs(np.linalg.det(affine[:3, :3])) < 1e-8
    img = nib.Nifti1Image(np.asarray(data if dtype is None else data.astype(dtype)), np.eye(4) if singular else affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, str(path))
    if singular:  # nibabel cannot encode it: patch the sform rows and codes in the raw header
        assert path.suffix == ".nii", "singular affines need an uncompressed .nii"
        with open(path, "r+b") as handle:
            handle.seek(252)
            handle.write(np.array([0, 1], "<i2").tobytes())  # qform_code 0, sform_code 1
            handle.seek(280)
            handle.write(np.asarray(affine[:3], "<f4").tobytes())
    return path


@pytest.fixture(scope="session")
def phantom_small():
    """The built-in phantom at 4 mm: (labels, affine)."""
    from synthseg.templates.phantom import make_phantom

    return make_phantom(spacing=4.0, seed=0)


@pytest.fixture(scope="session")
def phantom_t1(tmp_path_factory, phantom_small):
    """A T1-like image of the 4 mm phantom (float32) and its truth, written as NIfTI."""
    from synthseg.synthesis.config import rendering_config
    from synthseg.synthesis.generator import Generator
    from synthseg.templates.library import Template
    from synthseg.templates.recipe import load_recipe

    labels, affine = phantom_small
    template = Template("phantom", labels, affine, {})
    generator = Generator([template], load_recipe("siam16"), rendering_config(labels.shape, 4.0, "t1"), seed=0)
    params = generator.sample_params(3)
    params.centre = template.grid_centre
    image, truth = generator.render(params)
    folder = tmp_path_factory.mktemp("phantom")
    out_affine = generator.output_affine(params)
    path = write_nifti(folder / "phantom_t1.nii.gz", image.numpy().astype(np.float32), out_affine)
    return path, truth.numpy().astype(np.uint8), out_affine


@pytest.fixture(scope="session")
def phantom_t1_8mm(phantom_t1):
    """``phantom_t1`` at 8 mm (every other voxel, the affine scaled to match): (float32 array, affine), for N4,
    which takes seconds even on the 4 mm head."""
    path, _, affine = phantom_t1
    scan = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)[::2, ::2, ::2]
    return np.ascontiguousarray(scan), affine @ np.diag([2.0, 2.0, 2.0, 1.0])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The last checkpoint of a tiny U-Net trained for 100 steps on T1 renders of the phantom. Its 48³ patch, the
    window it is read through, covers most of the 4 mm phantom's head crop: a segmentation takes 0.4 s where 32³
    windows took 1.8 s (18 windows of this small network, each nearly as slow as a larger one on CPU)."""
    from synthseg.training.config import load_config
    from synthseg.training.trainer import Trainer

    run = tmp_path_factory.mktemp("tiny_run")
    config = load_config(None, [
        "data.templates=phantom", "generator.patch_size=[48,48,48]", "generator.spacing=4.0",
        "generator.partial_volume_probability=0", "model.channels=[4,8,16]", "model.strides=[2,2]",
        "loop.steps=100", "loop.val_every=100", "loop.val_samples=1", "loop.png_every=0", "loop.log_every=10",
        "optim.lr=0.01", "optim.warmup_steps=5", "generator.mode=t1"])
    Trainer(config, run, progress=False).run()
    return sorted((run / "checkpoints").glob("step_*.pt"))[-1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_checkpoint) -> Path:
    """The tiny U-Net exported like a shipped model."""
    from synthseg.training.export import export_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    export_model(tiny_checkpoint, out, fp16=False)
    return out
