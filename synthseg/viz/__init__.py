"""PNG montages: three orthogonal views of an image with a label overlay (Pillow only)."""

from synthseg.viz.montage import label_colors, montage, save_png, three_views

__all__ = ["label_colors", "montage", "save_png", "three_views"]
