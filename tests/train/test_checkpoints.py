"""Checkpoints and --resume: a run killed after step 2 resumes to step 4 without repeating a step."""

import json

import pytest
import torch
from transformers import TrainerCallback

from taskplan.model import load_policy
from taskplan.train.checkpoints import MARKER, complete_checkpoints, last_checkpoint, resume_checkpoint
from taskplan.train.grpo import GrpoConfig, run_grpo
from taskplan.train.sft import SftConfig, run_sft


class Killed(Exception):
    """Stands in for a kill -9 right after a checkpoint was written."""


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed after the checkpoint of step {self.step}")


def _logged_steps(checkpoint) -> list[int]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [e["step"] for e in state["log_history"] if "loss" in e]


def test_only_marked_checkpoints_count(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):  # 6: killed while saving
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / MARKER).write_text(json.dumps({"step": step}))
    (tmp_path / "checkpoint-x").mkdir()
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]
    assert last_checkpoint(tmp_path).name == "checkpoint-4"
    assert last_checkpoint(tmp_path / "absent") is None


def test_fresh_run_clears_old_checkpoints_and_resume_keeps_them(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / MARKER).write_text("{}")
    assert resume_checkpoint(tmp_path, resume=True).name == "checkpoint-2"
    assert resume_checkpoint(tmp_path, resume=False) is None
    assert not (tmp_path / "checkpoint-2").exists()
    assert resume_checkpoint(tmp_path, resume=True) is None  # nothing to resume: start from step 0


@pytest.mark.smoke
def test_grpo_resume_reaches_step_4_without_repeating(tiny_sft_dir, tiny_rows_dir, stage_paths):
    # given a 4-step GRPO run with checkpoints every 2 steps, killed right after the step-2 checkpoint
    cfg = GrpoConfig(model_dir=str(tiny_sft_dir), dataset_dir=tiny_rows_dir, **stage_paths, max_steps=4,
                     save_steps=2, prompts_per_step=2, num_generations=2, max_completion_length=8,
                     learning_rate=1e-2, eval_every=0, val_rows=1, val_max_new_tokens=4)
    with pytest.raises(Killed):
        run_grpo(cfg, callbacks=[KillAfterSave(2)])
    assert not cfg.out_dir.exists(), "a killed run must not leave a final model behind"
    assert last_checkpoint(cfg.checkpoint_dir).name == "checkpoint-2"
    # when it is resumed
    result = run_grpo(cfg, resume=True)
    # then it continues at step 3 and ends at step 4: same step count, no step twice
    final = last_checkpoint(cfg.checkpoint_dir)
    assert final.name == "checkpoint-4"
    assert _logged_steps(final) == [1, 2, 3, 4]
    assert result.metrics["steps"] == 4
    assert [r["step"] for r in result.history if "loss" in r] == [1, 2, 3, 4]


@pytest.mark.smoke
def test_sft_resume_matches_an_uninterrupted_run(tiny_model_dir, tiny_rows_dir, tmp_path):
    # given the same 4-step SFT run twice: once straight through, once killed after step 2 and resumed
    def config(name):
        root = tmp_path / name
        return SftConfig(model_dir=str(tiny_model_dir), dataset_dir=tiny_rows_dir, out_dir=root / "model",
                         checkpoint_dir=root / "ckpt", metrics_path=root / "m.json", plots_dir=root / "plots",
                         max_steps=4, save_steps=2, batch_size=2, learning_rate=1e-2, val_rows=1,
                         val_max_new_tokens=2)
    straight, resumed = config("straight"), config("resumed")
    run_sft(straight)
    with pytest.raises(Killed):
        run_sft(resumed, callbacks=[KillAfterSave(2)])
    run_sft(resumed, resume=True)
    # then optimizer, scheduler, data order and RNG were restored: the weights agree
    a, b = load_policy(straight.out_dir).state_dict(), load_policy(resumed.out_dir).state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), f"{key} differs after resume"
    assert _logged_steps(last_checkpoint(resumed.checkpoint_dir)) == [1, 2, 3, 4]
