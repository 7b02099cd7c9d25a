"""Three-view montages (axial, coronal, sagittal through the centre) with label overlays.

Arrays are taken in RAS voxel order (reorient first), so every view is drawn the radiological way
up: superior at the top, anterior at the top of axial views.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from synthseg.labels.protocol import STRUCTURES


def label_colors() -> np.ndarray:
    return np.array([s.rgb for s in STRUCTURES], dtype=np.uint8)


def _gray(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5]) if image.size else (0, 1)
    return (np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def three_views(volume: np.ndarray, centre: Sequence[int] | None = None) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices, rotated so up is superior (or anterior for axial)."""
    c = [n // 2 for n in volume.shape] if centre is None else centre
    sag = volume[c[0], :, :]  # (A, S)
    cor = volume[:, c[1], :]  # (R, S)
    axi = volume[:, :, c[2]]  # (R, A)
    return [np.rot90(sag), np.rot90(cor), np.rot90(axi)]


def montage(image: np.ndarray | None, labels: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 row of three views; labels (0-16) are blended over the grey image."""
    base = image if image is not None else np.zeros(labels.shape)
    gray = _gray(np.asarray(base, dtype=np.float32))
    views = three_views(gray)
    label_views = three_views(np.asarray(labels)) if labels is not None else [None] * 3
    colors = label_colors()
    tiles = []
    height = max(v.shape[0] for v in views)
    for view, lab in zip(views, label_views):
        rgb = np.repeat(view[..., None], 3, axis=2).astype(np.float32)
        if lab is not None:
            lab = np.clip(lab.astype(np.int64), 0, len(colors) - 1)
            mask = lab > 0
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colors[lab[mask]]
        pad = np.zeros((height, rgb.shape[1], 3), dtype=np.float32)
        pad[: rgb.shape[0]] = rgb
        tiles.append(pad)
    return np.concatenate(tiles, axis=1).astype(np.uint8)


def save_png(rows: Sequence[np.ndarray], path: str | Path, scale: int = 1) -> Path:
    """Stack montage rows vertically (padded to one width) and write a PNG atomically."""
    from PIL import Image as PILImage

    from synthseg.io.image import write_atomic

    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    picture = PILImage.fromarray(np.concatenate(padded, axis=0))
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), PILImage.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: picture.save(tmp, format="PNG"), suffix=".png")
    return path
