"""The 3D U-Net: MONAI ``UNet`` with 1 input channel and 17 outputs (background + 16 structures)."""

from __future__ import annotations

from typing import Any

import torch

from synthseg.labels.protocol import NUM_CLASSES


def build_network(config: Any) -> torch.nn.Module:
    """Build from a ``ModelConfig`` or the equivalent dict (as stored in a model card)."""
    from monai.networks.nets import UNet

    get = (lambda k: config[k]) if isinstance(config, dict) else (lambda k: getattr(config, k))
    return UNet(spatial_dims=3, in_channels=1, out_channels=NUM_CLASSES, channels=tuple(get("channels")),
                strides=tuple(get("strides")), num_res_units=int(get("num_res_units")), norm=get("norm"),
                dropout=float(get("dropout")))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def adapt_kernels(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fit ``state`` to the shapes of ``target`` where only a convolution's spatial kernel differs.

    A k×k×k kernel becomes 1×1×1 as its sum over space, which keeps the response to a constant input;
    anything else that differs is left for ``load_state_dict`` to reject.
    """
    adapted = dict(state)
    for key, weights in state.items():
        wanted = target.get(key)
        if (wanted is not None and weights.shape != wanted.shape and weights.dim() == 5
                and weights.shape[:2] == wanted.shape[:2] and tuple(wanted.shape[2:]) == (1, 1, 1)):
            adapted[key] = weights.sum(dim=(2, 3, 4), keepdim=True)
    return adapted
