"""One training run, top to bottom: load, build the trainer, resume or restart, train, save, summarise.

    result = run_training(cfg, SFT, resume=True)     # what train/sft.py's run_sft does
    result = run_training(cfg, GRPO)                 # and train/grpo.py's run_grpo

SFT and GRPO differ only in what a `TrainingMethod` holds: TRL's trainer class and config, the dataset
columns the trainer reads, the trainer's own arguments (GRPO's rewards), the numbers of their metrics
JSON, their plots and their result type. Everything else is here, once:

1. load the rows, the tokenizer and the starting policy (train/rows.py, model/factory.py);
2. build TRL's trainer with the throughput, validation, complete-checkpoint and log-line callbacks and
   LoRA (train/backend.py turns the shared settings into TrainingArguments);
3. resume only a checkpoint with this run's fingerprint, or clear stale ones and start at step 0
   (train/checkpoints.py); under `accelerate launch` every process decides before rank 0 clears;
4. train;
5. save the final policy in one rename and mark the run finished (rank 0);
6. write the metrics JSON (`steps`, `wall_seconds`, then the method's numbers) and the plot CSVs (rank 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskplan.io import atomic_write_json
from taskplan.model.factory import load_policy, load_tokenizer
from taskplan.train.backend import compact_logprobs_on_cpu, configure_cpu, lora_config, quiet_stdout
from taskplan.train.checkpoints import agreed_resume_point, mark_finished, run_fingerprint, save_trained
from taskplan.train.history import step_history, write_plots
from taskplan.train.rows import load_rows, training_columns, validation_subset
from taskplan.train.settings import TrainerSettings, TrainResult


@dataclass(frozen=True)
class TrainingMethod:
    """What a training stage supplies to `run_training`; the rest of a run is shared."""

    trainer_class: Callable[[], Any]            # TRL's trainer class (imported when a run starts: TRL is heavy)
    training_args: Callable[[Any], Any]        # stage config -> TRL's config
    columns: tuple[str, ...]                   # train-split columns the trainer reads
    summarise: Callable[[Any, list[dict[str, Any]]], dict[str, float | None]]   # history -> metrics
    plots: Any                                 # train/history.py plot specs
    result: type[TrainResult]
    trainer_arguments: Callable[[], dict[str, Any]] = field(default=dict)   # the trainer's own (reward_funcs)


def run_training(cfg: TrainerSettings, method: TrainingMethod, resume: bool = False,
                 callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train (resuming only a checkpoint of these inputs), save the policy, write metrics and plots.
    `callbacks` are extra TrainerCallbacks (the MLflow run's live metrics, SFT's time budget)."""
    from taskplan.train.callbacks import CompleteCheckpointCallback

    start = time.perf_counter()
    fingerprint = run_fingerprint(cfg)                                    # what this run learns from
    trainer, tokenizer = build_trainer(cfg, method, [CompleteCheckpointCallback(fingerprint), *callbacks])
    checkpoint = agreed_resume_point(trainer, cfg.checkpoint_dir, resume, fingerprint)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    save_trained(trainer, tokenizer, cfg.out_dir)
    main = trainer.is_world_process_zero()
    if main:
        mark_finished(cfg.checkpoint_dir, fingerprint)   # the next --resume starts afresh
    history = step_history(trainer.state.log_history)
    metrics = {
        "steps": float(trainer.state.global_step),
        "wall_seconds": round(time.perf_counter() - start, 2),  # the whole stage: load, train, validate, save
        **method.summarise(cfg, history),
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    if main:   # under accelerate launch, one process writes
        atomic_write_json(cfg.metrics_path, metrics)
        write_plots(history, cfg.plots_dir, method.plots)
    return method.result(cfg.out_dir, metrics, history)


def build_trainer(cfg: TrainerSettings, method: TrainingMethod, callbacks: Sequence[Any] = ()) -> tuple[Any, Any]:
    """Steps 1 and 2: TRL's trainer for `cfg` and the tokenizer (benchmarks/bench_grpo.py times it alone)."""
    from taskplan.train.callbacks import ThroughputCallback, ValAccuracyCallback

    configure_cpu(cfg.cpu_threads)
    compact_logprobs_on_cpu()
    rows = load_rows(cfg.dataset_dir)
    tokenizer = load_tokenizer(cfg.model_dir)
    model = load_policy(cfg.model_dir, dtype=cfg.model_dtype)
    val = ValAccuracyCallback(validation_subset(rows, cfg.val_rows, cfg.seed), tokenizer, cfg.eval_every,
                              cfg.val_batch_size, cfg.val_max_new_tokens, at_start=True)
    trainer = method.trainer_class()(
        model=model, args=method.training_args(cfg), train_dataset=training_columns(rows["train"], method.columns),
        processing_class=tokenizer, callbacks=[ThroughputCallback(), val, *callbacks],
        peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules),
        **method.trainer_arguments(),
    )
    return quiet_stdout(trainer), tokenizer
