import json
import shutil

import numpy as np
import pytest

from synthseg.inference.pose import (MAX_RESIDUAL_MM, MIN_STRUCTURES, POSE_IDS, POSE_TURN_DEGREES, head_rotation,
                                     reference_constellation, rotation_degrees, structure_centroids, turned_grid)
from synthseg.inference.segmenter import Segmenter
from synthseg.io.geometry import resample_to_grid
from synthseg.io.image import Image
from synthseg.training.routing import calibrate_pose


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a, b = [i for i in range(3) if i != axis]
    angle = np.deg2rad(degrees)
    r = np.eye(3)
    r[[a, a, b, b], [a, b, a, b]] = [np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)]
    return r


def _tilted(labels: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``labels`` turned by ``rotation`` (voxel frame) about the grid centre, nearest neighbour."""
    centre = (np.asarray(labels.shape) - 1) / 2
    source = np.eye(4)
    source[:3, :3] = rotation
    source[:3, 3] = centre - rotation @ centre
    return resample_to_grid(labels.astype(np.float32), source, labels.shape, np.eye(4), order=0).astype(np.uint8)


def test_centroids_are_mean_voxel_positions_in_mm():
    labels = np.zeros((10, 12, 14), np.uint8)
    labels[2:4, 5:9, 10:12] = 6
    labels[7, 1, 1] = 7  # too few voxels to count
    centroids = structure_centroids(labels, spacing=(2.0, 1.0, 0.5))
    assert set(centroids) == {6}
    np.testing.assert_allclose(centroids[6], [2.5 * 2.0, 6.5 * 1.0, 10.5 * 0.5])


@pytest.mark.parametrize("axis, degrees", [(0, 30.0), (1, -20.0), (2, 45.0)])
def test_head_rotation_recovers_a_known_turn(axis, degrees):
    rng = np.random.default_rng(axis)
    reference = {k: rng.normal(0, 30, 3) for k in range(1, 12)}
    turn = _rotation(axis, degrees)
    observed = {k: turn @ v + [5.0, -3.0, 12.0] + rng.normal(0, 0.5, 3) for k, v in reference.items()}
    rotation, residual = head_rotation({str(k): v.tolist() for k, v in reference.items()}, observed)  # JSON keys
    assert np.linalg.det(rotation) == pytest.approx(1.0) and 0 < residual < 0.5 * np.sqrt(3)  # the noise, fitted
    assert rotation_degrees(rotation.T @ turn) < 2.0
    assert rotation_degrees(rotation) == pytest.approx(abs(degrees), abs=2.0)


def test_head_rotation_needs_enough_structures():
    points = {k: np.array([k, k ** 2, 1.0]) for k in range(1, MIN_STRUCTURES)}
    assert head_rotation(points, points) is None


def test_turned_grid_puts_a_turned_head_back_and_holds_the_field_of_view(phantom_small):
    labels, _ = phantom_small
    reference = reference_constellation([structure_centroids(labels, 4.0)])
    turn = _rotation(0, 35.0) @ _rotation(2, -20.0)
    tilted = _tilted(labels, turn)
    rotation, _ = head_rotation(reference, structure_centroids(tilted, 4.0))
    assert rotation_degrees(rotation.T @ turn) < 4.0
    centre = np.mean(list(structure_centroids(tilted, 4.0).values()), axis=0) / 4.0
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    shape, turned_affine = turned_grid(tilted.shape, affine, rotation, centre)
    corners = np.array([[i, j, k, 1.0] for i in (0, tilted.shape[0] - 1) for j in (0, tilted.shape[1] - 1)
                        for k in (0, tilted.shape[2] - 1)])
    inside = (np.linalg.inv(turned_affine) @ affine @ corners.T)[:3]
    assert inside.min() >= -1e-6 and np.all(inside.max(axis=1) <= np.asarray(shape) - 1 + 1e-6)
    upright = resample_to_grid(tilted.astype(np.float32), affine, shape, turned_affine, order=0)
    assert rotation_degrees(turn) > 40.0  # ... and is back within a few 4 mm voxels' worth of degrees
    assert rotation_degrees(head_rotation(reference, structure_centroids(upright, 4.0))[0]) < 8.0


def test_a_turned_working_grid_follows_the_scan_closer_than_linear_and_stays_in_its_range(monkeypatch):
    """A turned grid's points fall between the scan's voxels: it is sampled cubic, which follows a smooth
    scan more closely than linear interpolation, and clipped, so a sharp edge does not overshoot."""
    monkeypatch.setattr("synthseg.inference.segmenter.normalize", lambda work, modality: work)  # raw values
    n = 40
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float32)] * 3, indexing="ij")

    def smooth(x, y, z):
        return 100 + 50 * np.sin(2 * np.pi * x / 6) * np.cos(2 * np.pi * y / 7) + 20 * np.sin(2 * np.pi * z / 5)

    turn = (_rotation(0, 20.0) @ _rotation(2, 10.0), np.full(3, (n - 1) / 2))
    work, box, affine = Segmenter._prepare(Image(smooth(i, j, k), np.eye(4)), "mr", 1.0, turn)
    crop = box.cropped_affine(affine)
    index = np.stack(np.meshgrid(*[np.arange(m) for m in work.shape], indexing="ij"), -1).reshape(-1, 3)
    world = index @ crop[:3, :3].T + crop[:3, 3]  # the scan's voxel frame is the world here
    interior = np.all((world > 3) & (world < n - 4), axis=1)
    exact = smooth(*world[interior].T)
    linear = resample_to_grid(smooth(i, j, k), np.eye(4), work.shape, crop, order=1).reshape(-1)[interior]
    cubic_error = np.abs(work.reshape(-1)[interior] - exact).mean()
    assert interior.sum() > 1000 and cubic_error < 0.5 * np.abs(linear - exact).mean()

    cube = np.zeros((n, n, n), np.float32)
    cube[12:28, 12:28, 12:28] = 1000.0
    work, _, _ = Segmenter._prepare(Image(cube, np.eye(4)), "mr", 1.0, turn)
    assert work.min() >= 0.0 and work.max() <= 1000.0 and work.max() > 990.0


def _segment_with_oracle(model, labels, affine, monkeypatch, degrees, reference, first_pass_degrees=None):
    """Segment ``labels`` turned by ``degrees`` with a perfect network and ``reference`` as the card's pose:
    the result, the turned truth and the working grids (world affines of their head crops) in order.
    ``first_pass_degrees``: the first pass sees the head turned only that far, as a network pulling a tilted
    head toward its training pose does."""
    tilted = _tilted(labels, _rotation(0, degrees))
    first = tilted if first_pass_degrees is None else _tilted(labels, _rotation(0, first_pass_degrees))
    prepare = Segmenter._prepare
    grids = []

    def recording_prepare(*args, **kwargs):  # remember where each working grid lies in the world
        work, box, grid_affine = prepare(*args, **kwargs)
        grids.append(box.cropped_affine(grid_affine))
        return work, box, grid_affine

    def oracle(self, work, network, flips, overlap=None):  # a perfect network: the truth on the grid it is given
        source = first if len(grids) == 1 else tilted
        truth = resample_to_grid(source.astype(np.float32), affine, work.shape, grids[-1], order=0).astype(int)
        return np.moveaxis(np.eye(17, dtype=np.float32)[truth], -1, 0)

    monkeypatch.setattr(Segmenter, "_prepare", staticmethod(recording_prepare))
    monkeypatch.setattr(Segmenter, "_predict", oracle)
    segmenter = Segmenter(model, device="cpu", tta=False, cleanup=False)
    segmenter.card["pose"] = {"ids": list(reference), "centroids_mm": list(reference.values())}
    image = np.random.default_rng(0).random(tilted.shape).astype(np.float32)  # any scan: the oracle ignores it
    return segmenter.segment(image, affine=affine), tilted, grids


@pytest.mark.parametrize("degrees", [0.0, 35.0])
def test_a_turned_head_is_segmented_on_a_turned_grid(tiny_model, phantom_small, monkeypatch, degrees):
    labels, affine = phantom_small
    reference = reference_constellation([structure_centroids(labels, 4.0)])
    result, tilted, grids = _segment_with_oracle(tiny_model, labels, affine, monkeypatch, degrees, reference)
    assert result.pose["turned"] == (degrees > POSE_TURN_DEGREES)
    assert result.pose["degrees"] == pytest.approx(degrees, abs=4.0) and result.pose["residual_mm"] < 2.0
    assert len(result.pose["reads"]) == 1 and len(grids) == (2 if result.pose["turned"] else 1)  # the re-read agrees
    out = np.asarray(result.labels.dataobj)
    assert out.shape == tilted.shape and np.allclose(result.labels.affine, affine)
    brain = tilted > 0  # the turned grid's labels come back onto the scan's grid
    assert np.mean(out[brain] == tilted[brain]) > (0.999 if degrees == 0 else 0.9)
    image = np.random.default_rng(0).random(tilted.shape).astype(np.float32)
    assert Segmenter(tiny_model, device="cpu", tta=False, pose=False).segment(image, affine=affine).pose is None


def test_a_pose_read_short_of_the_turn_is_read_again_on_the_turned_grid(tiny_model, phantom_small, monkeypatch):
    labels, affine = phantom_small
    reference = reference_constellation([structure_centroids(labels, 4.0)])
    result, tilted, grids = _segment_with_oracle(tiny_model, labels, affine, monkeypatch, 45.0, reference,
                                                 first_pass_degrees=20.0)
    first, second = result.pose["reads"]  # the first pass under-reads; the turned grid's labels show the turn
    assert first == pytest.approx(20.0, abs=4.0) and second == pytest.approx(45.0, abs=4.0)
    assert result.pose["turned"] and result.pose["degrees"] == second and len(grids) == 3
    assert rotation_degrees(_rotation(0, 45.0).T @ _grid_rotation(grids[-1], affine)) < 4.0
    out = np.asarray(result.labels.dataobj)
    assert np.mean(out[tilted > 0] == tilted[tilted > 0]) > 0.9


def _grid_rotation(grid_affine: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The rotation of a working grid's axes in the scan's voxel frame."""
    axes = (np.linalg.inv(affine) @ grid_affine)[:3, :3]
    return axes / np.linalg.norm(axes, axis=0)


def test_a_constellation_unlike_any_head_turns_nothing(tiny_model, phantom_small, monkeypatch):
    labels, affine = phantom_small
    rng = np.random.default_rng(1)
    scrambled = {k: rng.normal(0, 30, 3).tolist() for k in POSE_IDS}
    result, _, grids = _segment_with_oracle(tiny_model, labels, affine, monkeypatch, 35.0, scrambled)
    assert result.pose["residual_mm"] > MAX_RESIDUAL_MM and not result.pose["turned"] and len(grids) == 1


def test_export_and_calibrate_store_the_training_templates_pose(tiny_model, tmp_path):
    card = json.loads((tiny_model / "model.json").read_text())
    pose = card["pose"]  # the tiny model's export read its phantom templates
    assert pose["ids"] == list(POSE_IDS) and len(pose["centroids_mm"]) == len(POSE_IDS)
    assert np.allclose(np.mean(pose["centroids_mm"], axis=0), 0, atol=0.01)  # a centred constellation
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    del card["pose"]
    (model / "model.json").write_text(json.dumps(card))
    calibrate_pose(model)
    assert json.loads((model / "model.json").read_text())["pose"] == pose


@pytest.mark.parametrize("edges, turned", [({"superior": 50.0}, True), ({"superior": 50.0, "inferior": 40.0}, False)])
def test_a_slab_stays_straight_and_a_one_sided_cut_turns(tiny_model, phantom_small, monkeypatch, edges, turned):
    """A brain cut by the field of view on opposite sides (a slab) keeps straight grids whatever turn its cut
    constellation reads; cut on one side only, it turns as a whole head does."""
    import synthseg.inference.segmenter as segmenter_module

    labels, affine = phantom_small
    reference = reference_constellation([structure_centroids(labels, 4.0)])
    monkeypatch.setattr(segmenter_module, "brain_at_edges", lambda labels, grid, outside=None: dict(edges))
    result, _, grids = _segment_with_oracle(tiny_model, labels, affine, monkeypatch, 35.0, reference)
    assert result.pose["degrees"] == pytest.approx(35.0, abs=4.0) and result.pose["turned"] == turned
    assert len(grids) == (2 if turned else 1) and result.brain_at_edges == edges
