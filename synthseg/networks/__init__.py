"""Segmentation networks (MONAI U-Net) built from a plain config dict."""

from synthseg.networks.unet import adapt_kernels, build_network, count_parameters

__all__ = ["adapt_kernels", "build_network", "count_parameters"]
