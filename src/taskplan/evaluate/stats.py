"""Intervals for success rates: 10 episodes per task leave wide uncertainty, and the report says how wide.

    lo, hi = wilson(7, 10)          # (0.397, 0.892): 95 % Wilson score interval
    separated(a=(9, 10), b=(2, 10)) # True when the two intervals do not overlap

Wilson's score interval keeps its coverage near 95 % for small n and rates
near 0 or 1, where the normal approximation (p +- 1.96 sqrt(p(1-p)/n)) gives
intervals outside [0, 1] or of zero width.
"""

from __future__ import annotations

import math

Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be between 0 and n={n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if successes == 0 else lo), (1.0 if successes == n else hi)   # exact ends, no rounding dust


def rate_interval(rate: float | None, n: int) -> tuple[float, float] | None:
    """Wilson interval of a rate reported as a fraction of n (None when there is no rate)."""
    if rate is None or n <= 0:
        return None
    return wilson(round(rate * n), n)


def separated(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two rates (successes, n) have disjoint 95 % intervals (a conservative test of a difference)."""
    lo_a, hi_a = wilson(*a)
    lo_b, hi_b = wilson(*b)
    return hi_a < lo_b or hi_b < lo_a


def format_rate(rate: float | None, n: int) -> str:
    """`0.70 [0.40, 0.89]`, or `-` without a rate."""
    interval = rate_interval(rate, n)
    if interval is None:
        return "-"
    return f"{rate:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"
