"""Segmentation networks (MONAI U-Net) built from a plain config dict."""

from synthseg.networks.unet import build_network, count_parameters

__all__ = ["build_network", "count_parameters"]
