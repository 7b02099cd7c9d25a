"""Reading, validating and atomically writing images; geometry as pure image → image functions."""

from synthseg.io.image import Image, load_image, save_image, validate_image, is_image_path, IMAGE_SUFFIXES
from synthseg.io.geometry import (
    reorient, to_canonical, resample_to_spacing, resample_to_grid, crop_to_mask, pad_to_shape,
    BoundingBox, voxel_sizes,
)

__all__ = ["Image", "load_image", "save_image", "validate_image", "is_image_path", "IMAGE_SUFFIXES",
           "reorient", "to_canonical", "resample_to_spacing", "resample_to_grid", "crop_to_mask",
           "pad_to_shape", "BoundingBox", "voxel_sizes"]
