"""Checkpoints and --resume: a run killed after step 2 resumes to step 4 without repeating a step."""

import json

import pytest
import torch
from transformers import TrainerCallback

from taskplan.model import load_policy
from taskplan.train.checkpoints import MARKER, complete_checkpoints, last_checkpoint, resume_checkpoint, run_fingerprint
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


class StepCounter(TrainerCallback):
    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


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


def test_fresh_run_clears_old_checkpoints_and_resume_keeps_matching_ones(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / MARKER).write_text(json.dumps({"step": 2, "fingerprint": "abc"}))
    assert resume_checkpoint(tmp_path, resume=True, fingerprint="abc").name == "checkpoint-2"
    assert resume_checkpoint(tmp_path, resume=False, fingerprint="abc") is None
    assert not (tmp_path / "checkpoint-2").exists()
    assert resume_checkpoint(tmp_path, resume=True, fingerprint="abc") is None  # nothing to resume: step 0


def test_resume_refuses_a_checkpoint_of_other_inputs(tmp_path):
    for marker in ({"step": 2, "fingerprint": "old"}, {"step": 2}):   # other inputs; a marker from before
        (tmp_path / "checkpoint-2").mkdir()
        (tmp_path / "checkpoint-2" / MARKER).write_text(json.dumps(marker))
        assert resume_checkpoint(tmp_path, resume=True, fingerprint="new") is None
        assert not (tmp_path / "checkpoint-2").exists(), "a stale checkpoint is cleared, not rotated in"


def test_fingerprint_follows_model_data_and_config_but_not_output_paths(tiny_model_dir, tiny_rows_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg = GrpoConfig(model_dir=str(model), dataset_dir=tiny_rows_dir)
    fp = run_fingerprint(cfg)
    assert run_fingerprint(GrpoConfig(model_dir=str(model), dataset_dir=tiny_rows_dir, out_dir=tmp_path / "x",
                                      save_steps=7, eval_every=3)) == fp, "where outputs go is not an input"
    assert run_fingerprint(GrpoConfig(model_dir=str(model), dataset_dir=tiny_rows_dir, learning_rate=2e-3)) != fp
    assert run_fingerprint(GrpoConfig(model_dir=str(model), dataset_dir=tiny_rows_dir, max_steps=2)) != fp
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")
    assert run_fingerprint(cfg) != fp, "a new input model is a new run"


def _grpo_cfg(model_dir, rows_dir, paths, **kw) -> GrpoConfig:
    base = dict(max_steps=4, save_steps=2, prompts_per_step=2, num_generations=2, max_completion_length=8,
                learning_rate=1e-2, eval_every=0, val_rows=1, val_max_new_tokens=4)
    return GrpoConfig(model_dir=str(model_dir), dataset_dir=rows_dir, **paths, **{**base, **kw})


@pytest.mark.smoke
def test_grpo_resume_restarts_when_the_sft_model_or_a_param_changed(tiny_sft_dir, tiny_rows_dir, stage_paths,
                                                                      tmp_path):
    import shutil

    # given a GRPO run killed after its step-2 checkpoint
    sft = tmp_path / "sft"
    shutil.copytree(tiny_sft_dir, sft)
    cfg = _grpo_cfg(sft, tiny_rows_dir, stage_paths)
    with pytest.raises(Killed):
        run_grpo(cfg, callbacks=[KillAfterSave(2)])
    # when the learning rate changed, --resume starts over at step 0 (and runs all 4 steps)
    changed = _grpo_cfg(sft, tiny_rows_dir, stage_paths, learning_rate=5e-3)
    with pytest.raises(Killed):
        run_grpo(changed, resume=True, callbacks=[KillAfterSave(2)])
    # and when the SFT model changed, too
    from taskplan.model import load_policy as load

    model = load(sft)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(sft)
    steps = StepCounter()
    result = run_grpo(changed, resume=True, callbacks=[steps])
    assert steps.steps == [1, 2, 3, 4], "trained from step 0, not from the stale checkpoint-2"
    assert result.metrics["steps"] == 4
    # and identical inputs after a kill resume from the last checkpoint
    with pytest.raises(Killed):
        run_grpo(changed, callbacks=[KillAfterSave(2)])
    steps = StepCounter()
    run_grpo(changed, resume=True, callbacks=[steps])
    assert steps.steps == [3, 4]


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
