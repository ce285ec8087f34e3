"""Step metrics into an open stage run while a Trainer trains (SFT, GRPO).

    with stage_run("grpo", cfg, io) as run:
        result = run_grpo(cfg, resume=True, callbacks=run.callbacks())   # MlflowStepCallback(run)

Everything the trainer and our callbacks put in `state.log_history` (TRL's loss, reward, KL, learning
rate; our validation accuracy, tokens/s, training seconds) is logged as `<stage>/<key>` at its step, as
soon as it appears. At each checkpoint the run id is written beside it (`mlflow_run.json` in the
checkpoint folder); a run resumed from that checkpoint moves back into that MLflow run (same run id, set
RUNNING again), so one training has one run however often it was interrupted, and the new run opened for
the resumed attempt is deleted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from taskplan.errors import TaskplanError
from taskplan.io import atomic_write_json, read_json_input
from taskplan.tracking.values import history_metrics, log_metrics

log = logging.getLogger(__name__)

RUN_FILE = "mlflow_run.json"


class MlflowStepCallback(TrainerCallback):
    def __init__(self, run: Any):
        self.run = run              # tracking.runs.StageRun: run_id may move on resume
        self.logged = 0             # entries of state.log_history already logged

    def on_train_begin(self, args, state, control, **kwargs):
        self.logged = len(state.log_history)           # a resumed run logged those before
        if state.global_step > 0:
            self._continue_previous(Path(args.output_dir))

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._flush(state)

    def on_step_end(self, args, state, control, **kwargs):
        self._flush(state)                             # validation accuracy is appended without on_log

    def on_save(self, args, state, control, **kwargs):
        atomic_write_json(Path(args.output_dir) / RUN_FILE, {"run_id": self.run.run_id})

    def on_train_end(self, args, state, control, **kwargs):
        self._flush(state)

    def _flush(self, state: Any) -> None:
        import mlflow

        rows = state.log_history[self.logged:]
        if not rows:
            return
        self.logged = len(state.log_history)
        rows = [{"step": r.get("step", state.global_step), **r} for r in rows]
        log_metrics(mlflow.MlflowClient(), self.run.run_id, history_metrics(self.run.stage, rows))

    def _continue_previous(self, checkpoint_dir: Path) -> None:
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            doc = read_json_input(checkpoint_dir / RUN_FILE, "checkpoint run file")
        except TaskplanError:
            return      # a checkpoint from before tracking, or a damaged file: this run goes on as a new one
        previous = doc.get("run_id") if isinstance(doc, dict) else None
        if not isinstance(previous, str):
            return
        client = mlflow.MlflowClient()
        try:
            client.get_run(previous)
        except MlflowException:
            return
        if previous == self.run.run_id:
            return
        client.update_run(previous, status="RUNNING")
        client.delete_run(self.run.run_id)
        log.info("resumed training continues MLflow run %s", previous)
        self.run.run_id = previous
