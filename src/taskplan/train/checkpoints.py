"""Checkpoints and resume: which checkpoint to trust, and the final model folder.

The trainer writes `checkpoint-N/` (model, optimizer, scheduler, RNG state,
trainer_state.json) every `save_steps` into the stage's checkpoint_dir, which
lives outside the stage's output folder. A checkpoint counts only once
`CompleteCheckpointCallback` has dropped its marker after the trainer finished
writing it, so a run killed mid-save resumes from the previous one.

The marker also carries the run's fingerprint: a digest of the input model
folder, the dataset folder and the stage config minus the keys that only say
where outputs go or how often to log and save (RUN_ONLY_KEYS). `--resume`
continues only a checkpoint with the current fingerprint; any other (a new SFT
model, a changed learning rate or max_steps) is cleared and the run starts at
step 0, saying so in one log line. A run that finished leaves a marker, so the
next `--resume` starts afresh instead of "resuming" a completed run. The CLI, DVC and the Prefect flow all go
through `resume_checkpoint` (train/run.py), so none of them can continue a stale run.

    fp = run_fingerprint(cfg)                                   # what train/run.py's run_training does
    start = agreed_resume_point(trainer, cfg.checkpoint_dir, resume=True, fingerprint=fp)
    trainer.train(resume_from_checkpoint=start); save_trained(...); mark_finished(...)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskplan.errors import TaskplanError
from taskplan.io import atomic_write_json, path_digest, read_json_input
from taskplan.model.factory import save_policy

if TYPE_CHECKING:
    from taskplan.train.settings import TrainerSettings

log = logging.getLogger(__name__)

MARKER = "taskplan_complete.json"
FINISHED = "taskplan_finished.json"   # in checkpoint_dir once a run has trained all its steps
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Config keys that change where results go or how often they are logged/saved/measured, not what is trained.
RUN_ONLY_KEYS = frozenset({"out_dir", "checkpoint_dir", "metrics_path", "plots_dir", "save_steps",
                           "save_total_limit", "eval_every", "val_rows", "val_batch_size", "val_max_new_tokens"})


def run_fingerprint(cfg: TrainerSettings) -> str:
    """Digest of what a training run learns from: its input model and dataset folders (file contents) and
    its config without RUN_ONLY_KEYS. A hub id as model_dir is fingerprinted by name."""
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in RUN_ONLY_KEYS}
    h = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
    for key in ("model_dir", "dataset_dir"):
        h.update(f"\0{key}\0{path_digest(Path(str(fields[key])))}".encode())
    return h.hexdigest()


def mark_complete(checkpoint: Path, step: int, fingerprint: str | None = None) -> None:
    atomic_write_json(checkpoint / MARKER, {"step": step, "fingerprint": fingerprint})


def checkpoint_fingerprint(checkpoint: Path) -> str | None:
    """The marker's fingerprint; None for a missing or unreadable marker (that checkpoint is not resumed)."""
    try:
        doc = read_json_input(checkpoint / MARKER, "checkpoint marker")
    except TaskplanError:
        return None
    return doc.get("fingerprint") if isinstance(doc, dict) else None


def complete_checkpoints(checkpoint_dir: Path | str) -> list[Path]:
    """Complete checkpoints in `checkpoint_dir`, oldest first."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _CHECKPOINT.match(p.name)) and p.is_dir() and (p / MARKER).exists()]
    return [p for _, p in sorted(found)]


def last_checkpoint(checkpoint_dir: Path | str) -> Path | None:
    done = complete_checkpoints(checkpoint_dir)
    return done[-1] if done else None


def resume_checkpoint(checkpoint_dir: Path | str, resume: bool, fingerprint: str | None,
                      clear: bool = True) -> Path | None:
    """With `resume`, the last complete checkpoint whose fingerprint equals `fingerprint` (None: start
    fresh). Otherwise, or when the checkpoints came from other inputs, clear them (`clear`), so that a fresh
    run never mixes with (or rotates away) those of an earlier one. `clear=False` only decides: the other
    processes of a multi-process run decide alike, and rank 0 alone clears."""
    root = Path(checkpoint_dir)
    finished = root / FINISHED
    say = log.info if clear else log.debug   # one process tells
    if resume and finished.exists():
        say("--resume: the last run in %s finished; starting a new one from step 0", root)
        resume = False
    start = None
    if resume:
        last = last_checkpoint(root)
        if last is None:
            say("--resume: no complete checkpoint in %s; starting from step 0", root)
        elif fingerprint is not None and checkpoint_fingerprint(last) == fingerprint:
            say("resuming from %s (same model, data and config)", last)
            start = last
        elif clear:
            log.warning("--resume: %s was trained from another model, dataset or config; starting from step 0",
                        last)
    if clear:
        finished.unlink(missing_ok=True)
        if start is None and root.is_dir():
            for p in root.iterdir():
                if _CHECKPOINT.match(p.name) and p.is_dir():
                    shutil.rmtree(p)
    return start


def agreed_resume_point(trainer: Any, checkpoint_dir: Path | str, resume: bool, fingerprint: str) -> Path | None:
    """`resume_checkpoint` for a built trainer's run. Under `accelerate launch` every process runs it: the
    other ranks decide from the files as they are, then rank 0 decides alike and clears stale checkpoints,
    so no rank reads while rank 0 deletes."""
    main = trainer.is_world_process_zero()
    checkpoint = None if main else resume_checkpoint(checkpoint_dir, resume, fingerprint, clear=False)
    trainer.accelerator.wait_for_everyone()
    if main:
        checkpoint = resume_checkpoint(checkpoint_dir, resume, fingerprint)
    trainer.accelerator.wait_for_everyone()
    return checkpoint


def mark_finished(checkpoint_dir: Path | str, fingerprint: str | None) -> None:
    """A run that trained all its steps is done: `--resume` starts the next one afresh."""
    atomic_write_json(Path(checkpoint_dir) / FINISHED, {"fingerprint": fingerprint})


def save_trained(trainer: Any, tokenizer: Any, out_dir: Path | str) -> Path:
    """Write the trained policy as a plain HF folder (LoRA adapters merged) in one atomic rename."""
    model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
    if hasattr(model, "merge_and_unload"):  # a peft model: ship the merged weights, not an adapter
        model = model.merge_and_unload()
    if not trainer.is_world_process_zero():
        return Path(out_dir)
    return save_policy(model, tokenizer, out_dir)
