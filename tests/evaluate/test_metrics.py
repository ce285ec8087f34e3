"""SR, ASAT, ASST and the invalid-action rate on hand-built episode lists."""

from __future__ import annotations

import pytest

from taskplan.evaluate.metrics import CONTRACT_KEYS, add_bounds, check_contract, flat_metrics, task_metrics, task_table
from taskplan.evaluate.rollout import Episode


def ep(task="burger", success=False, steps=15, cap=15, replies=None, invalid=0, optimum=9, seed=42) -> Episode:
    return Episode(task=task, seed=seed, cap=cap, success=success, steps=steps,
                   replies=steps + invalid if replies is None else replies, invalid=invalid, optimum=optimum)


def test_asst_is_null_when_nothing_succeeded():
    m = task_metrics([ep(steps=3, invalid=15), ep(steps=15)])
    assert m["sr"] == 0.0
    assert m["asst"] is None, "no successful episode: ASST is undefined"
    assert m["asat"] == 15.0, "failures count as the cap, whatever steps they took"


def test_asat_counts_failures_as_the_cap_and_asst_only_successes():
    m = task_metrics([ep(success=True, steps=9), ep(success=True, steps=11), ep(steps=4, invalid=15), ep(steps=15)])
    assert m["sr"] == 0.5
    assert m["asat"] == pytest.approx((9 + 11 + 15 + 15) / 4, abs=1e-4)
    assert m["asst"] == pytest.approx(10.0)
    assert m["sr_opt"] == 0.25, "only the 9-step success is optimal (optimum 9)"
    assert m["opt_mean"] == 9.0 and m["cap"] == 15 and m["listed_opt"] == 10


def test_invalid_actions_and_rate():
    m = task_metrics([ep(steps=15, invalid=5), ep(steps=0, invalid=15, replies=15)])
    assert m["invalid_actions"] == 20
    assert m["invalid_rate"] == pytest.approx(20 / 35, abs=1e-4)


def test_table_groups_by_task_and_follows_the_contract():
    table = task_table([ep("burger"), ep("cheeseburger", cap=23, steps=23), ep("burger", success=True, steps=8)])
    assert list(table) == ["burger", "cheeseburger"]
    assert table["burger"]["episodes"] == 2
    assert all(k in table["burger"] for k in CONTRACT_KEYS)
    assert table["burger"]["bound"] is None, "no bound until a scorer provides one"
    assert check_contract({"p": table}) == []
    add_bounds(table, {"burger": 0.25}, {"burger": -0.602})
    assert table["burger"]["bound"] == 0.25 and table["burger"]["bound_log10"] == -0.602
    assert table["cheeseburger"]["bound"] is None


def test_unknown_optimum_gives_null_sr_opt():
    m = task_metrics([ep(optimum=None, success=True, steps=9)])
    assert m["sr_opt"] is None and m["opt_mean"] is None


def test_flat_metrics_and_contract_problems():
    flat = flat_metrics({"sft": {"burger": {"sr": 0.5, "asst": None, "episodes": 10}}})
    assert flat == {"eval/sft/burger/sr": 0.5, "eval/sft/burger/episodes": 10.0}
    assert check_contract({"sft": {"burger": {"sr": 0.5}}}) == ["sft/burger: missing asat, asst, episodes, "
                                                                 "invalid_actions, bound"]
    assert check_contract([]) != []
