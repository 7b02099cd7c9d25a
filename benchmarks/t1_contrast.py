"""Real T1 contrast per brain structure on the scale of the generator's tissue priors, to check them.

Each structure's median intensity is put on the prior scale with two anchors from the same scan:
the ventricles at 30 and the white matter within 6 voxels of the structure at 185. Anchoring on
*nearby* white matter removes the scanner's smooth bias (IXI's white matter is ~20 % brighter at the
brain's centre than at its edge), which would otherwise make the deep nuclei look brighter than white
matter. Sources: the 21 IXI T1 scans with their MUSE labels, and FreeSurfer's bert (norm.mgz, aseg).

    python benchmarks/t1_contrast.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from _common import SHARED, header

STRUCTURES = {1: "GM", 5: "cerGM", 6: "Thal", 7: "Pal", 8: "Put", 9: "Caud", 10: "Accu", 11: "Amyg", 12: "Hippo"}
TISSUE_OF = {"GM": "grey_matter", "cerGM": "grey_matter", "Thal": "thalamus", "Pal": "pallidum",
             "Put": "deep_grey", "Caud": "deep_grey", "Accu": "deep_grey", "Amyg": "limbic_grey",
             "Hippo": "limbic_grey"}
CSF_AT, WM_AT, NEAR_VOXELS = 30.0, 185.0, 6
BANDS_MM = [0, 20, 30, 40, 50, 60, 70]


def on_prior_scale(image: np.ndarray, targets: np.ndarray, wm: np.ndarray) -> dict[str, float]:
    """Median of each structure, mapped linearly so ventricles → 30 and nearby white matter (``wm``, a
    white-matter mask clear of partial volume) → 185."""
    from scipy import ndimage

    ventricles = np.median(image[ndimage.binary_erosion(targets == 4)])
    values = {}
    for target, name in STRUCTURES.items():
        mask = targets == target
        near_wm = ndimage.binary_dilation(mask, iterations=NEAR_VOXELS) & wm
        core = ndimage.binary_erosion(mask) if mask.sum() > 2000 else mask  # keep small nuclei whole
        scale = (np.median(image[core]) - ventricles) / (np.median(image[near_wm]) - ventricles)
        values[name] = CSF_AT + (WM_AT - CSF_AT) * float(scale)
    return values


def white_matter_profile(image: np.ndarray, targets: np.ndarray, wm: np.ndarray, zooms) -> list[float]:
    """White matter median per distance band from the brain's centre, relative to the 60-70 mm band."""
    from scipy import ndimage

    brain = (targets > 0) & (targets < 255)
    where = np.argwhere(wm)
    distance = np.linalg.norm((where - np.array(ndimage.center_of_mass(brain))) * np.asarray(zooms), axis=1)
    values = image[wm]
    medians = [np.median(values[(distance >= lo) & (distance < hi)]) for lo, hi in zip(BANDS_MM, BANDS_MM[1:])]
    return [float(m / medians[BANDS_MM.index(60)]) for m in medians]


def cases() -> list[tuple[str, Path, Path, str]]:
    """``(source, image, reference labels, label mapping)`` for the IXI scans and bert."""
    from synthseg.evaluation.evaluate import pair_paths

    ixi = SHARED / "dev" / "ixi"
    pairs = pair_paths(sorted((ixi / "t1").glob("*.nii.gz")), sorted((ixi / "dlmuse").glob("*.nii.gz")))
    bert = SHARED / "dev" / "freesurfer_bert"
    return ([("IXI", image, ref, "muse") for image, ref in pairs]
            + [("bert", bert / "norm.mgz", bert / "aseg.mgz", "aseg")])


def main() -> None:
    header("real T1 contrast on the prior scale")
    import nibabel as nib
    from scipy import ndimage

    from synthseg.labels.mapping import MAPPINGS, apply_mapping
    from synthseg.synthesis.tissues import TISSUES

    rows: dict[str, list[dict[str, float]]] = {"IXI": [], "bert": []}
    profiles = []
    for source, image_path, ref_path, mapping in cases():
        loaded = nib.load(image_path)
        image = np.asarray(loaded.dataobj, dtype=np.float32)
        targets = apply_mapping(np.asarray(nib.load(ref_path).dataobj).astype(np.int32), MAPPINGS[mapping])
        wm = ndimage.binary_erosion(targets == 2, iterations=2)
        rows[source].append(on_prior_scale(image, targets, wm))
        if source == "IXI":
            profiles.append(white_matter_profile(image, targets, wm, loaded.header.get_zooms()[:3]))
    bands = [f"{lo}-{hi} mm" for lo, hi in zip(BANDS_MM, BANDS_MM[1:])]
    print("IXI white matter by distance from the brain's centre (median / 60-70 mm band): "
          + ", ".join(f"{b} {v:.2f}" for b, v in zip(bands, np.mean(profiles, axis=0))))
    print(f"{'structure':10s} {'IXI (n=%d)' % len(rows['IXI']):>14s} {'bert':>6s} {'prior':>6s}  tissue")
    for name, tissue in TISSUE_OF.items():
        ixi = [r[name] for r in rows["IXI"]]
        print(f"{name:10s} {np.mean(ixi):8.0f} ± {np.std(ixi):3.0f} {rows['bert'][0][name]:6.0f} "
              f"{TISSUES[tissue].t1:6.0f}  {tissue}")


if __name__ == "__main__":
    main()
