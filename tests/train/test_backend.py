"""Where and how a trainer runs (train/backend.py): the TrainingArguments both stages share, precision and
CPU settings, LoRA, batch splitting over processes, and the trainer's quiet stdout. No training here."""

from __future__ import annotations

import pytest

from taskplan.errors import ConfigError
from taskplan.train import backend
from taskplan.train.sft import SftConfig


@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as a CPU-only one, whatever it has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _cfg(tmp_path, **kw) -> SftConfig:
    return SftConfig(model_dir="models/init", out_dir=tmp_path / "model", checkpoint_dir=tmp_path / "ckpt",
                     metrics_path=tmp_path / "m.json", plots_dir=tmp_path / "plots", **kw)


def test_trainer_kwargs_carry_the_shared_settings(tmp_path, cpu_only):
    cfg = _cfg(tmp_path, max_steps=40, save_steps=10, learning_rate=3e-3, gradient_checkpointing=True, seed=7)
    kw = backend.trainer_kwargs(cfg)
    assert kw["output_dir"] == str(tmp_path / "ckpt") and kw["max_steps"] == 40 and kw["save_steps"] == 10
    assert kw["learning_rate"] == 3e-3 and kw["seed"] == kw["data_seed"] == 7
    assert kw["report_to"] == "none", "tracking/ owns the MLflow runs, not the Trainer"
    assert kw["save_only_model"] is False, "optimizer, scheduler and RNG state are saved for an exact resume"
    assert kw["use_cpu"] and not kw["bf16"] and not kw["activation_checkpointing"], "never on CPU"
    assert kw["lr_scheduler_kwargs"] is None


def test_warmup_stable_decay_decays_over_the_last_fifth(tmp_path, cpu_only):
    kw = backend.trainer_kwargs(_cfg(tmp_path, max_steps=50, lr_scheduler="warmup_stable_decay"))
    assert kw["lr_scheduler_type"] == "warmup_stable_decay" and kw["lr_scheduler_kwargs"] == {"num_decay_steps": 10}
    kw = backend.trainer_kwargs(_cfg(tmp_path, max_steps=2, lr_scheduler="warmup_stable_decay"))
    assert kw["lr_scheduler_kwargs"] == {"num_decay_steps": 1}, "at least one decay step"


def test_bf16_only_where_a_gpu_has_it(cpu_only, caplog):
    assert backend.use_bf16("fp32") is False
    assert backend.use_bf16("auto") is False
    assert backend.use_bf16("bf16") is False
    assert "needs a CUDA GPU" in caplog.text, "asking for bf16 without a GPU is said, not silently dropped"


def test_batch_is_split_over_processes_and_accumulation_steps(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert backend.world_size() == 1 and backend.per_device_batch(8, 2, "sft.batch_size") == 4
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert backend.per_device_batch(8, 2, "sft.batch_size") == 2
    with pytest.raises(ConfigError, match=r"sft.batch_size=6 is not divisible by .* = 4; change one") as err:
        backend.per_device_batch(6, 2, "sft.batch_size")
    assert "\n" not in str(err.value)


def test_only_rank_zero_is_the_main_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert backend.is_main_process(), "a plain run is its own main process"
    monkeypatch.setenv("RANK", "0")
    assert backend.is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not backend.is_main_process()


def test_lora_is_off_at_rank_zero_and_targets_the_named_modules():
    assert backend.lora_config(0, 32, 0.0, "all-linear") is None
    cfg = backend.lora_config(8, 16, 0.1, "q_proj, v_proj")
    assert cfg.r == 8 and cfg.lora_alpha == 16 and set(cfg.target_modules) == {"q_proj", "v_proj"}
    assert backend.lora_config(4, 16, 0.0, "all-linear").target_modules == "all-linear"


def test_cpu_settings_flush_denormals_and_set_threads(cpu_only):
    import torch

    threads = torch.get_num_threads()
    try:
        backend.configure_cpu(1)
        assert torch.get_num_threads() == 1
        assert torch.tensor([1e-320], dtype=torch.float64).item() == 0.0, "denormals are flushed to zero"
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def test_compact_scoring_is_switched_on_for_cpu_once(monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils

    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)   # restored after the test
    backend.compact_logprobs_on_cpu()
    patched = trl_utils._use_triton
    assert patched(torch.device("cpu")) is True and patched(torch.device("meta")) is False
    backend.compact_logprobs_on_cpu()
    assert trl_utils._use_triton is patched, "a second call does not wrap the wrapper"


def test_quiet_stdout_swaps_the_printer_for_a_log_line():
    from transformers.trainer_callback import PrinterCallback

    from taskplan.train.callbacks import LogLineCallback

    class Trainer:
        def __init__(self):
            self.callbacks = [PrinterCallback]

        def remove_callback(self, cb):
            self.callbacks.remove(cb)

        def add_callback(self, cb):
            self.callbacks.append(cb)

    trainer = backend.quiet_stdout(Trainer())
    assert len(trainer.callbacks) == 1 and isinstance(trainer.callbacks[0], LogLineCallback)
