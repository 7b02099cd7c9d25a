import pytest

from synthseg.synthesis.config import GeneratorConfig
from synthseg.synthesis.params import to_range


def test_range_convention():
    assert to_range(3, "x") == (-3.0, 3.0)
    assert to_range(0.2, "s", centre=1.0) == (0.8, 1.2)
    assert to_range((1, 4), "x") == (1.0, 4.0)
    assert to_range(False, "x") is None and to_range(None, "x") is None


@pytest.mark.parametrize("value, message", [
    (-1, "must be >= 0"), ((4, 1), "min > max"), ("abc", "expected a number"), (True, "not a range"),
])
def test_range_errors(value, message):
    with pytest.raises(ValueError, match=message):
        to_range(value, "generator.x")


@pytest.mark.parametrize("field, value, message", [
    ("rotation", 500, "goes below -180"), ("std", (-1, 2), "goes below 0"), ("bias_probability", 1.5, "probability"),
    ("mode", "xray", "not one of"), ("patch_size", (2, 2, 2), "patch_size"), ("motion_shots", (3, 1), "motion_shots"),
    ("strip_margin", (3, -2), "min > max"), ("strip_closing", -1.0, "strip_closing"),
])
def test_generator_config_is_validated_at_construction(field, value, message):
    config = GeneratorConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        config.validated()
