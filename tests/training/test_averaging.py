import pytest
import torch

from synthseg.training.averaging import WeightAverage


def _linear(value: float) -> torch.nn.Module:
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def test_rate_is_a_running_mean_until_it_reaches_decay():
    average = WeightAverage(_linear(0.0), 0.99)
    assert average.rate(0) == 0.0 and average.rate(1) == 0.5 and average.rate(9) == pytest.approx(0.9)
    assert average.rate(99) == pytest.approx(0.99) and average.rate(10_000) == 0.99


def test_average_of_constant_steps_is_their_mean():
    model = _linear(0.0)
    average = WeightAverage(model, 0.999)
    for step, value in enumerate([3.0, 5.0, 10.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model, step)
    assert torch.allclose(average.network.weight, torch.full((1, 2), 6.0))


def test_update_follows_the_recurrence_and_leaves_the_model_alone():
    model = _linear(0.0)
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update(model, 1)  # rate 0.5: 0.5 * 0 + 0.5 * 1
    assert torch.allclose(average.network.weight, torch.full((1, 2), 0.5))
    average.update(model, 100)  # rate capped at 0.5: 0.5 * 0.5 + 0.5 * 1
    assert torch.allclose(average.network.weight, torch.full((1, 2), 0.75))
    assert torch.all(model.weight == 1.0) and not average.network.weight.requires_grad


def test_buffers_are_copied_not_averaged():
    model = torch.nn.BatchNorm1d(3)
    average = WeightAverage(model, 0.9)
    model.running_mean.fill_(5.0)
    average.update(model, 1000)
    assert torch.all(average.network.running_mean == 5.0)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(_linear(0.0), decay)
