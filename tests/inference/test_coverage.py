import nibabel as nib
import numpy as np
import pytest

from synthseg.inference.coverage import brain_at_edges, coverage_warning, cut_on_opposite_sides
from synthseg.inference.segmenter import Segmenter


def _brain_in_box(shape=(20, 20, 20)) -> np.ndarray:
    labels = np.full(shape, 16, np.uint8)  # head tissue all round
    labels[4:16, 4:16, 4:16] = 2  # white matter
    return labels


def test_a_brain_inside_the_field_of_view_reaches_no_edge():
    assert brain_at_edges(_brain_in_box(), np.diag([2.0, 2.0, 2.0, 1.0])) == {}
    assert coverage_warning({}) is None


@pytest.mark.parametrize("codes, side", [("RAS", "superior"), ("RAI", "inferior"), ("LPS", "superior")])
def test_the_cut_side_is_named_from_the_affine_and_its_area_in_cm2(codes, side):
    labels = _brain_in_box()
    labels[6:14, 6:14, 16:] = 1  # cortex up to the last slice: 8 x 8 voxels of 2 x 5 mm on that face
    affine = nib.orientations.inv_ornt_aff(nib.orientations.axcodes2ornt(codes), labels.shape) @ np.diag(
        [2.0, 5.0, 3.0, 1.0])
    assert nib.aff2axcodes(affine) == tuple(codes)
    assert brain_at_edges(labels, affine, min_cm2=6.4) == {side: 6.4}
    assert brain_at_edges(labels, affine, min_cm2=6.5) == {} == brain_at_edges(labels, affine)
    assert f"({side} 6.4 cm² of brain at its edge)" in coverage_warning(brain_at_edges(labels, affine, min_cm2=1.0))


def test_permuted_axes_name_the_face_by_where_it_lies_in_the_head():
    labels = np.moveaxis(_brain_in_box(), 2, 0).copy()
    labels[0, 5:15, 5:15] = 3  # CSF on the first slice of the first axis, which grows towards superior
    affine = np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]])
    assert nib.aff2axcodes(affine) == ("S", "R", "A")
    assert brain_at_edges(labels, affine, min_cm2=1.0) == {"inferior": 1.0}


def test_background_skull_and_head_on_the_faces_do_not_count():
    labels = _brain_in_box()
    labels[:, :, -1] = 15  # skull over the whole top face
    labels[:, :, 0] = 14  # vessels over the bottom one: not a brain structure
    assert brain_at_edges(labels, np.diag([4.0, 4.0, 4.0, 1.0]), min_cm2=0.01) == {}


def test_beyond_what_was_scanned_the_box_the_scan_fills_is_the_field_of_view():
    """A resliced scan with NaN (or a fill) beyond a cut inside its grid is cut at the faces of the box its data
    fill; a round brain on a NaN background (skull-stripped) touches that box at a few voxels only."""
    labels = _brain_in_box()
    outside = np.zeros(labels.shape, bool)
    outside[:, :, 10:] = True  # nothing scanned above z = 10: the brain (z 4-15) cut there
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    assert brain_at_edges(labels, affine) == {}  # the grid's faces hold no brain
    assert brain_at_edges(labels, affine, min_cm2=1.0, outside=outside) == {"superior": 5.8}  # 12 x 12 voxels of 4 mm²
    centre = np.indices((40, 40, 40)) - 19.5
    ball = np.linalg.norm(centre, axis=0) < 15  # a brain 60 mm across, stripped: NaN all round it
    labels = np.where(ball, 1, 0).astype(np.uint8)
    assert brain_at_edges(labels, affine, outside=~ball) == {}
    touching = brain_at_edges(labels, affine, min_cm2=0.0, outside=~ball)  # the ball's flat caps on the voxel grid
    assert len(touching) == 6 and max(touching.values()) == pytest.approx(2.1)  # of a 28 cm² cross-section


def test_the_segmenter_warns_of_a_cut_brain_and_leaves_stripping_undecided(tiny_model, phantom_t1, monkeypatch):
    """Wiring (the tiny test model labels too little brain for a real cut; the benchmark measured real ones): the
    final labels on the output grid are read, a cut brain gets the warning, and skull stripping is not judged."""
    import synthseg.inference.segmenter as segmenter_module

    path, _, affine = phantom_t1
    seen, edges = [], {}
    monkeypatch.setattr(segmenter_module, "brain_at_edges", lambda labels, grid, outside=None: seen.append(
        (labels.shape, grid, outside)) or dict(edges))
    segmenter = Segmenter(tiny_model, device="cpu", tta=False, voxel_size=8.0)
    whole = segmenter.segment(path)
    edges["superior"] = 42.0
    cut = segmenter.segment(path)
    assert whole.labels.shape != nib.load(str(path)).shape  # labels on the --voxel-size grid, and read there
    assert len(seen) == 2 and all(shape == whole.labels.shape and np.allclose(grid, whole.labels.affine)
                                  and outside is None for shape, grid, outside in seen)  # all of it was scanned
    assert whole.brain_at_edges == {} and isinstance(whole.skull_stripped, bool)
    assert not any("field of view" in w for w in whole.warnings)
    assert cut.brain_at_edges == {"superior": 42.0} and cut.skull_stripped is None
    assert coverage_warning(edges) in cut.warnings and cut.what_was_done()["brain_at_edges_cm2"] == edges
    scan = np.asarray(nib.load(str(path)).dataobj, np.float32)
    scan[:, :, scan.shape[2] // 2:] = np.nan  # resliced with NaN beyond a cut: the voxels beyond reach the check
    filled = segmenter.segment(scan, affine, posteriors=True)
    outside = seen[-1][2]
    assert outside.shape == whole.labels.shape  # on the 8 mm output grid, nearest to the scan's NaN
    assert outside[:, :, :outside.shape[2] // 2 - 1].sum() == 0 and outside[:, :, outside.shape[2] // 2 + 1:].all()
    # nothing was scanned there: background in the labels and the posteriors, and no volume counted
    assert not np.asanyarray(filled.labels.dataobj)[outside].any()
    assert (np.asanyarray(filled.posteriors.dataobj)[outside] == 255 * np.eye(17, dtype=np.uint8)[0]).all()
    assert filled.volumes["Head"] < 0.75 * whole.volumes["Head"]
    segmenter.segment(np.nan_to_num(scan, nan=-32768.0), affine)  # a reslicing tool's fill in place of NaN
    assert np.array_equal(seen[-1][2], outside)


def test_a_slab_is_a_brain_cut_on_opposite_sides():
    assert cut_on_opposite_sides({"superior": 80.0, "inferior": 60.0})
    assert cut_on_opposite_sides({"left": 12.0, "anterior": 30.0, "right": 11.0})
    assert not cut_on_opposite_sides({"superior": 80.0, "anterior": 60.0}) and not cut_on_opposite_sides({})
