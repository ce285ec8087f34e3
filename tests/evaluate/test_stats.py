"""Wilson intervals: known values, coverage of the true rate, edge cases."""

import random

import pytest

from taskplan.evaluate.stats import format_rate, separated, wilson


def test_known_values():
    lo, hi = wilson(7, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.397, 0.892)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and round(hi, 3) == 0.278, "a zero rate still has an upper limit above 0"
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and round(lo, 3) == 0.722
    assert wilson(0, 0) == (0.0, 1.0)


def test_coverage_is_near_95_percent():
    rng = random.Random(0)
    for p in (0.1, 0.5, 0.8):
        hits = 0
        for _ in range(2000):
            k = sum(rng.random() < p for _ in range(40))
            lo, hi = wilson(k, 40)
            hits += lo <= p <= hi
        assert 0.92 <= hits / 2000 <= 0.99, (p, hits / 2000)


def test_separation_and_format():
    assert separated((10, 10), (2, 10)) and not separated((7, 10), (5, 10))
    assert format_rate(0.7, 10) == "0.70 [0.40, 0.89]" and format_rate(None, 10) == "-"
    with pytest.raises(ValueError):
        wilson(11, 10)
