"""Trainer callbacks (train/callbacks.py) driven by hand with the trainer's own state objects and a fake
clock: when validation runs, what throughput and time entries say across a resume, when the time budget
stops training, which checkpoints are marked complete."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from taskplan.train import callbacks
from taskplan.train.callbacks import (
    CompleteCheckpointCallback,
    LogLineCallback,
    ThroughputCallback,
    TimeBudgetCallback,
    ValAccuracyCallback,
    trained_seconds,
)
from taskplan.train.checkpoints import checkpoint_fingerprint, complete_checkpoints


def _state(max_steps: int = 10, global_step: int = 0, log_history: list | None = None) -> TrainerState:
    state = TrainerState(max_steps=max_steps, global_step=global_step)
    state.log_history = list(log_history or [])
    return state


class Clock:
    """time.perf_counter for the callbacks: moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(callbacks.time, "perf_counter", fake)
    return fake


def test_trained_seconds_is_the_last_recorded_value():
    assert trained_seconds(_state()) == 0.0
    state = _state(log_history=[{"train_seconds": 1.5}, {"loss": 1.0}, {"train_seconds": 4.0}, {"loss": 0.9}])
    assert trained_seconds(state) == 4.0


def _train_steps(cb: ThroughputCallback, state: TrainerState, clock: Clock, steps: list[tuple[float, int]]) -> None:
    """Run steps of (seconds, cumulative tokens) through the callback as the Trainer would."""
    args, control = SimpleNamespace(), TrainerControl()
    for seconds, tokens in steps:
        cb.on_step_begin(args, state, control)
        clock.now += seconds
        cb.on_step_end(args, state, control)
        clock.now += 7.0                                   # validation and logging: not training time
        state.global_step += 1
        state.log_history.append({"loss": 1.0, "num_tokens": tokens, "step": state.global_step})
        cb.on_log(args, state, control)


def test_throughput_counts_tokens_per_second_of_training_steps_only(clock):
    state, cb = _state(), ThroughputCallback()
    cb.on_train_begin(SimpleNamespace(), state, TrainerControl())
    _train_steps(cb, state, clock, [(2.0, 100), (0.5, 150)])
    first, second = state.log_history
    assert first["tokens_per_second"] == 50.0 and first["step_seconds"] == 2.0 and first["train_seconds"] == 2.0
    assert second["tokens_per_second"] == 100.0 and second["train_seconds"] == 2.5


def test_throughput_after_a_resume_continues_the_clock_and_skips_the_first_rate(clock):
    state, cb = _state(global_step=5, log_history=[{"train_seconds": 30.0, "step": 5}]), ThroughputCallback()
    cb.on_train_begin(SimpleNamespace(), state, TrainerControl())
    _train_steps(cb, state, clock, [(1.0, 40), (1.0, 60)])
    first, second = state.log_history[1:]
    assert "tokens_per_second" not in first, "the token counter's start is unknown after a resume"
    assert first["train_seconds"] == 31.0 and second["train_seconds"] == 32.0
    assert second["tokens_per_second"] == 20.0


def test_time_budget_stops_and_saves_once_the_budget_is_spent():
    cb, args = TimeBudgetCallback(seconds=10.0), SimpleNamespace()
    state, control = _state(log_history=[{"train_seconds": 9.9}]), TrainerControl()
    cb.on_log(args, state, control)
    assert not control.should_training_stop and not control.should_save
    state.log_history.append({"train_seconds": 10.0})
    cb.on_log(args, state, control)
    assert control.should_training_stop and control.should_save, "a final checkpoint of what was trained"


@pytest.fixture
def measured(monkeypatch) -> list[int]:
    """The steps at which ValAccuracyCallback decoded (greedy decoding replaced by a fixed accuracy)."""
    steps: list[int] = []
    monkeypatch.setattr(callbacks, "greedy_accuracy", lambda model, tok, rows, *a: steps.append(len(rows)) or 0.25)
    return steps


def _run_validation(cb: ValAccuracyCallback, state: TrainerState, steps: int) -> None:
    args, control = SimpleNamespace(), TrainerControl()
    cb.on_train_begin(args, state, control, model=None)
    for _ in range(steps):
        state.global_step += 1
        cb.on_step_end(args, state, control, model=None)
    cb.on_train_end(args, state, control, model=None)


def test_validation_runs_at_start_every_n_steps_and_at_the_end(measured):
    state = _state(max_steps=7)
    _run_validation(ValAccuracyCallback(["row"] * 3, None, every=3, at_start=True), state, 7)
    entries = [e for e in state.log_history if "val_accuracy" in e]
    assert [e["step"] for e in entries] == [0, 3, 6, 7], "no second measurement at the end of the last step"
    assert all(e["val_accuracy"] == 0.25 and "train_seconds" in e for e in entries) and measured == [3] * 4


def test_a_run_stopped_early_still_ends_with_a_measurement(measured):
    state = _state(max_steps=100)
    _run_validation(ValAccuracyCallback(["row"], None, every=0), state, 4)     # stopped at step 4 of 100
    assert [e["step"] for e in state.log_history if "val_accuracy" in e] == [4]


def test_validation_is_skipped_without_rows_or_off_the_main_process(measured):
    _run_validation(ValAccuracyCallback([], None, every=1, at_start=True), _state(max_steps=2), 2)
    state = _state(max_steps=2)
    state.is_world_process_zero = False
    _run_validation(ValAccuracyCallback(["row"], None, every=1, at_start=True), state, 2)
    assert measured == [] and state.log_history == []


def test_greedy_accuracy_counts_replies_that_parse_to_the_expert_action(monkeypatch):
    rows = [{"prompt": [], "answer": "Do nothing", "valid_actions": ["Do nothing", "Move robot1 from a to b"]}] * 3
    replies = ["Action: Do nothing", "Action: Move robot1 from a to b", "no action at all"]
    monkeypatch.setattr(callbacks, "greedy_replies", lambda *a: replies)
    assert callbacks.greedy_accuracy(None, None, rows) == pytest.approx(1 / 3)
    assert callbacks.greedy_accuracy(None, None, []) == 0.0


def test_log_line_every_twentieth_of_training_and_at_the_end(caplog):
    cb, state = LogLineCallback(), _state(max_steps=40)
    caplog.set_level(logging.INFO, logger=callbacks.__name__)
    for step in (1, 2, 3, 40):
        state.global_step = step
        state.log_history.append({"loss": 0.5, "reward": 0.25, "step": step})
        cb.on_log(SimpleNamespace(), state, TrainerControl())
    assert [r.getMessage() for r in caplog.records] == ["step 2/40: loss 0.5, reward 0.25",
                                                        "step 40/40: loss 0.5, reward 0.25"]


def test_a_saved_checkpoint_is_marked_complete_with_the_run_fingerprint(tmp_path):
    args, state = SimpleNamespace(output_dir=str(tmp_path)), _state(global_step=6)
    (tmp_path / "checkpoint-6").mkdir()
    (tmp_path / "checkpoint-3").mkdir()                    # written, never marked: a killed save
    CompleteCheckpointCallback("abc123").on_save(args, state, TrainerControl())
    assert complete_checkpoints(tmp_path) == [tmp_path / "checkpoint-6"]
    assert checkpoint_fingerprint(tmp_path / "checkpoint-6") == "abc123"
