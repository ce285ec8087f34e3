"""Trainer callbacks: single-turn validation accuracy, throughput, complete-checkpoint markers.

TRL's GRPOTrainer has no evaluation metric of its own for our task, so
`ValAccuracyCallback` decodes a fixed validation sample greedily every
`every` steps (and at the last step) and records the fraction of replies that
are exactly the expert action. Its entries go into `state.log_history`, so they
are saved with every checkpoint, survive `--resume`, and reach the stage's
`history` like TRL's own metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from taskplan.train.checkpoints import mark_complete
from taskplan.train.rewards import is_expert_action

log = logging.getLogger(__name__)


def greedy_accuracy(model: Any, tokenizer: Any, rows: Any, batch_size: int = 16,
                    max_new_tokens: int = 32) -> float:
    """Fraction of `rows` whose greedy reply parses to the expert action (`answer`)."""
    replies = greedy_replies(model, tokenizer, [r["prompt"] for r in rows], batch_size, max_new_tokens)
    hits = [is_expert_action(rep, r["answer"], r["valid_actions"]) for rep, r in zip(replies, rows)]
    return sum(hits) / len(hits) if hits else 0.0


def greedy_replies(model: Any, tokenizer: Any, prompts: Sequence[list[dict]], batch_size: int = 16,
                   max_new_tokens: int = 32) -> list[str]:
    """Greedy replies for chat prompts, batched by length (left padding), in input order."""
    import torch

    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    encoded = [tokenizer.apply_chat_template(p, add_generation_prompt=True, return_dict=True)["input_ids"]
               for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    replies: list[str] = [""] * len(encoded)
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(device)
                out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
                texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
                for i, text in zip(idx, texts):
                    replies[i] = text
    finally:
        model.train(was_training)
    return replies


def trained_seconds(state: Any) -> float:
    """Seconds of training steps so far: the last `train_seconds` in the log history (0 before the first)."""
    return next((e["train_seconds"] for e in reversed(state.log_history) if "train_seconds" in e), 0.0)


class ValAccuracyCallback(TrainerCallback):
    """Greedy single-turn accuracy on `rows` at step 0 (optional), every `every` steps and at the end."""

    def __init__(self, rows: Any, tokenizer: Any, every: int, batch_size: int = 16, max_new_tokens: int = 32,
                 at_start: bool = False):
        self.rows, self.tokenizer, self.every = rows, tokenizer, every
        self.batch_size, self.max_new_tokens, self.at_start = batch_size, max_new_tokens, at_start

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.at_start and state.global_step == 0:
            self._evaluate(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if (self.every > 0 and step % self.every == 0) or step >= state.max_steps:
            self._evaluate(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # a run stopped early (time budget) still ends with a measurement of its final weights
        done = [e["step"] for e in state.log_history if "val_accuracy" in e]
        if not done or done[-1] != state.global_step:
            self._evaluate(state, model)

    def _evaluate(self, state, model) -> None:
        if not state.is_world_process_zero or len(self.rows) == 0:
            return
        start = time.perf_counter()
        acc = greedy_accuracy(model, self.tokenizer, self.rows, self.batch_size, self.max_new_tokens)
        seconds = time.perf_counter() - start
        state.log_history.append({"val_accuracy": acc, "val_seconds": round(seconds, 3),
                                  "train_seconds": trained_seconds(state),
                                  "step": state.global_step})
        log.info("step %d: single-turn val accuracy %.3f on %d rows (%.1f s)", state.global_step, acc,
                 len(self.rows), seconds)


class ThroughputCallback(TrainerCallback):
    """Adds `tokens_per_second`, `step_seconds` and `train_seconds` (time in training steps since step 0,
    across resumes: the x axis of the learning curves) to each training log entry. Time spent in steps
    only, so validation decoding is not counted. Register it before `ValAccuracyCallback`."""

    def __init__(self) -> None:
        self._step_start = 0.0
        self._busy = 0.0
        self._total = 0.0
        self._last_tokens: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        # A fresh run counts tokens from 0; after a resume the first count has no reference
        # (SFT's counter restarts, GRPO's continues), so that first entry gets no rate.
        self._last_tokens = 0.0 if state.global_step == 0 else None
        self._total = trained_seconds(state)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._busy += time.perf_counter() - self._step_start

    def on_log(self, args, state, control, logs=None, **kwargs):
        entry = state.log_history[-1] if state.log_history else None
        if not entry or "num_tokens" not in entry or self._busy <= 0:
            return
        tokens = float(entry["num_tokens"])
        delta = tokens - self._last_tokens if self._last_tokens is not None and tokens >= self._last_tokens else None
        if delta is not None:
            entry["tokens_per_second"] = round(delta / self._busy, 2)
        entry["step_seconds"] = round(self._busy, 4)
        self._total += self._busy
        entry["train_seconds"] = round(self._total, 3)
        self._last_tokens, self._busy = tokens, 0.0


class TimeBudgetCallback(TrainerCallback):
    """Stops training (with a final checkpoint) once `seconds` of training steps have run: the SFT control
    row trains for the wall-clock that GRPO took. Register it after ThroughputCallback."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_log(self, args, state, control, logs=None, **kwargs):
        spent = trained_seconds(state)
        if spent >= self.seconds:
            log.info("time budget of %.0f s of training reached at step %d; stopping", self.seconds,
                     state.global_step)
            control.should_training_stop = True
            control.should_save = True


class LogLineCallback(TrainerCallback):
    """One INFO line per ~5% of training on stderr: step, loss, reward, KL, val accuracy when present."""

    KEYS = (("loss", "loss"), ("reward", "reward"), ("kl", "kl"), ("tokens_per_second", "tok/s"))

    def on_log(self, args, state, control, logs=None, **kwargs):
        every = max(1, state.max_steps // 20)
        if not state.is_world_process_zero or (state.global_step % every and state.global_step != state.max_steps):
            return
        entry = state.log_history[-1] if state.log_history else {}
        parts = [f"{label} {entry[key]:.4g}" for key, label in self.KEYS if isinstance(entry.get(key), (int, float))]
        if parts:
            log.info("step %d/%d: %s", state.global_step, state.max_steps, ", ".join(parts))


class CompleteCheckpointCallback(TrainerCallback):
    """Marks a checkpoint folder complete once the trainer has written all of it (resume trusts only these),
    with the fingerprint of the run's inputs (resume continues only a matching one)."""

    def __init__(self, fingerprint: str | None = None):
        self.fingerprint = fingerprint

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step,
                          self.fingerprint)
