import pytest
import torch

from synthseg.labels.protocol import NUM_CLASSES
from synthseg.networks import adapt_kernels, build_network, count_parameters

CONFIG = dict(channels=[4, 8, 16], strides=[2, 2], num_res_units=1, norm="instance", dropout=0.0)


def test_network_maps_one_channel_to_all_classes():
    net = build_network(CONFIG)
    assert net(torch.zeros(1, 1, 16, 16, 16)).shape == (1, NUM_CLASSES, 16, 16, 16)
    assert count_parameters(net) == sum(p.numel() for p in net.parameters()) > 0


def test_weights_carry_over_to_a_full_resolution_top_level():
    torch.manual_seed(0)
    strided = build_network(CONFIG).state_dict()
    full = build_network({**CONFIG, "strides": [1, 2]})
    adapted = adapt_kernels(strided, full.state_dict())
    full.load_state_dict(adapted)  # every shape now fits
    changed = [k for k in strided if strided[k].shape != adapted[k].shape]
    assert changed == ["model.0.residual.weight"]
    # The 1×1×1 projection answers a constant input as the 3×3×3 one does away from the border.
    constant = torch.full((1, 1, 5, 5, 5), 2.0)
    wide = torch.nn.functional.conv3d(constant, strided["model.0.residual.weight"])
    narrow = torch.nn.functional.conv3d(constant, adapted["model.0.residual.weight"])
    torch.testing.assert_close(narrow[..., 1:4, 1:4, 1:4], wide.expand(-1, -1, 3, 3, 3))


def test_other_mismatches_are_left_for_loading_to_reject():
    strided = build_network(CONFIG).state_dict()
    wider = build_network({**CONFIG, "channels": [8, 8, 16]})
    with pytest.raises(RuntimeError, match="size mismatch"):
        wider.load_state_dict(adapt_kernels(strided, wider.state_dict()))
