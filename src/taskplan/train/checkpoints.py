"""Checkpoints and resume: which checkpoint to trust, and the final model folder.

The trainer writes `checkpoint-N/` (model, optimizer, scheduler, RNG state,
trainer_state.json) every `save_steps` into the stage's checkpoint_dir, which
lives outside the stage's output folder. A checkpoint counts only once
`CompleteCheckpointCallback` has dropped its marker after the trainer finished
writing it, so a run killed mid-save resumes from the previous one.

    start = resume_checkpoint(cfg.checkpoint_dir, resume=True)   # Path or None
    trainer.train(resume_from_checkpoint=start)
    save_trained(trainer, cfg.out_dir)                           # atomic HF folder
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from taskplan.io import atomic_write_json

log = logging.getLogger(__name__)

MARKER = "taskplan_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint: Path, step: int) -> None:
    atomic_write_json(checkpoint / MARKER, {"step": step})


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


def resume_checkpoint(checkpoint_dir: Path | str, resume: bool) -> Path | None:
    """With `resume`, the last complete checkpoint (None: start fresh). Without it, clear old checkpoints
    so that a fresh run never mixes with (or rotates away) those of an earlier one."""
    root = Path(checkpoint_dir)
    if resume:
        last = last_checkpoint(root)
        if last is None:
            log.warning("--resume: no complete checkpoint in %s; starting from step 0", root)
        else:
            log.info("resuming from %s", last)
        return last
    if root.is_dir():
        for p in root.iterdir():
            if _CHECKPOINT.match(p.name) and p.is_dir():
                shutil.rmtree(p)
    return None


def save_trained(trainer: Any, tokenizer: Any, out_dir: Path | str) -> Path:
    """Write the trained policy as a plain HF folder (LoRA adapters merged) in one atomic rename."""
    from taskplan.model.factory import save_policy

    model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
    if hasattr(model, "merge_and_unload"):  # a peft model: ship the merged weights, not an adapter
        model = model.merge_and_unload()
    if not trainer.is_world_process_zero():
        return Path(out_dir)
    return save_policy(model, tokenizer, out_dir)
