"""Inference: any head scan in, 16 structures out in the scan's own grid."""
