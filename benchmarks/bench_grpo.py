"""GRPO step benchmark: step time, generated tokens/s, model-FLOPs utilisation, peak memory.

    python -m benchmarks.bench_grpo            # GPU: Qwen2.5-1.5B architecture, random init, bf16, G=8
    python -m benchmarks.bench_grpo --tiny     # CPU (or forced): the cpu-tiny model, < 1 minute

It drives the real stage code (`taskplan.train.run.build_trainer`: TRL
GRPOTrainer, our rewards, KL to the reference) on synthetic single-turn rows
from real kitchen observations, so what is timed is what `taskplan grpo` runs.
One burn-in step, then timed steps (with `torch.cuda.synchronize()` around
every measurement on GPU). Weights are random, so completions always run to
`max_completion_length`: generation lengths are fixed and comparable.

FLOPs (N = parameters, tied embedding counted once, i.e. the lm_head matmul):
  training   6 * N * (prompt + completion tokens of every completion)
  generation 2 * N * (prefill tokens + generated tokens)
MFU = (training + generation FLOPs) / step time / peak bf16 FLOP/s of the GPU
(the reference model's forward pass is extra work and not counted, as in verl).
Each line reads `name  value unit  ratio x anchor`, anchors measured in the
same run or fixed references: step time against a plain forward+backward of
the same completions (how much generation, reference model and TRL add);
generated tokens/s against the decode roofline (HBM bandwidth / bf16 weight
bytes x batch); MFU against verl's 13.7 % for a 1.5B GRPO actor (the issue's
goal is >= 15 %); peak memory against the GPU's memory. On CPU the MFU
anchor is this CPU's own fp32 matmul rate, memory is peak RSS against RAM.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

VERL_MFU = 0.137  # verl, Qwen2.5-1.5B GRPO actor MFU
# dense bf16 peak FLOP/s and HBM bandwidth (bytes/s) by device-name fragment
GPU_SPECS = {"H200": (989e12, 4.8e12), "H100 PCIe": (756e12, 2.0e12), "H100": (989e12, 3.35e12),
             "A100": (312e12, 2.0e12), "L40S": (362e12, 0.86e12), "A10G": (125e12, 0.6e12)}
TASKS = ("cheese_sandwich", "burger", "cheeseburger", "double_cheeseburger")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny CPU model (default when no GPU is present)")
    p.add_argument("--group-size", type=int, default=None, help="completions per prompt (GPU 8, tiny 4)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (GPU 4, tiny 1)")
    p.add_argument("--steps", type=int, default=None, help="timed steps after one burn-in (GPU 3, tiny 2)")
    p.add_argument("--completion-tokens", type=int, default=None, help="max completion length (GPU 32, tiny 12)")
    p.add_argument("--micro-batch", type=int, default=8, help="completions per forward/backward on GPU")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (e.g. a local Qwen2.5 download); "
                   "default: the domain tokenizer trained on the synthetic rows")
    args = p.parse_args(argv)
    from taskplan.env import quiet_env

    quiet_env()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import torch

    gpu = torch.cuda.is_available() and not args.tiny
    g = args.group_size or (8 if gpu else 4)
    prompts = args.prompts or (4 if gpu else 1)
    steps = args.steps or (3 if gpu else 2)
    completion = args.completion_tokens or (32 if gpu else 12)
    if not gpu:
        print("# CPU run on the tiny config: GPU numbers (1.5B bf16 step time, tokens/s, MFU, memory) need a GPU",
              flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as tmp:
        root = Path(tmp)
        rows_dir = _write_rows(root / "rows", short_prompt=not gpu)
        model_dir = _write_model(root / "model", rows_dir, gpu, args.tokenizer)
        res = _run(root, model_dir, rows_dir, gpu, g, prompts, steps, completion, args.micro_batch)
    _report(res, gpu)
    return 0


def _write_rows(path: Path, short_prompt: bool, per_task: int = 24) -> Path:
    """Single-turn rows from seeded random walks (actions stand in for the expert's; only timing matters)."""
    from datasets import Dataset, DatasetDict

    from taskplan.data.prompts import answer_text, build_messages
    from taskplan.kitchen import KitchenEnv

    rows = []
    for n, task in enumerate(TASKS):
        env, rng = KitchenEnv.from_spec(task, seed=1000 + n), random.Random(n)
        obs, prev = env.reset(), None
        for step in range(per_task):
            valid = env.action_texts()
            action = rng.choice(valid)
            rows.append({"prompt": build_messages(obs, prev, style="short" if short_prompt else "full"),
                         "completion": [{"role": "assistant", "content": answer_text(action)}], "answer": action,
                         "valid_actions": valid, "task": task, "seed": 1000 + n, "step": step})
            env.step(action)
            obs, prev = env.observation(), action
    DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:2])}).save_to_disk(str(path))
    return path


def _write_model(path: Path, rows_dir: Path, gpu: bool, tokenizer_dir: str | None) -> Path:
    from taskplan.model import ModelInitConfig, run_model_init

    if gpu:
        source = "random_init"
        base = "Qwen/Qwen2.5-1.5B-Instruct"
        cfg = ModelInitConfig(source=source, base_model=base, dataset_dir=rows_dir, out_dir=path, dtype="bfloat16")
        if tokenizer_dir:
            _save_with_tokenizer(cfg, tokenizer_dir)
            return path
    else:
        cfg = ModelInitConfig(dataset_dir=rows_dir, out_dir=path, hidden_size=64, num_layers=2, num_heads=4,
                              num_kv_heads=2, intermediate_size=256)
    run_model_init(cfg)
    return path


def _save_with_tokenizer(cfg, tokenizer_dir: str) -> None:
    from taskplan.model import load_policy, load_tokenizer, save_policy
    from taskplan.model.builder import set_generation_defaults

    tok = load_tokenizer(tokenizer_dir)
    model = load_policy(cfg.base_model, dtype=cfg.dtype, random_init=True, seed=cfg.seed)
    set_generation_defaults(model, tok)
    save_policy(model, tok, cfg.out_dir)


def _run(root: Path, model_dir: Path, rows_dir: Path, gpu: bool, g: int, prompts: int, steps: int,
         completion: int, micro_batch: int) -> dict:
    import torch
    from transformers import TrainerCallback

    from taskplan.model import num_parameters
    from taskplan.train.grpo import GRPO, GrpoConfig
    from taskplan.train.run import build_trainer

    per_step = prompts * g
    accum = max(1, per_step // micro_batch) if gpu else 1
    cfg = GrpoConfig(model_dir=str(model_dir), dataset_dir=rows_dir, out_dir=root / "out",
                     checkpoint_dir=root / "ckpt", metrics_path=root / "m.json", plots_dir=root / "plots",
                     max_steps=steps + 1, prompts_per_step=prompts, num_generations=g,
                     gradient_accumulation_steps=accum, max_completion_length=completion,
                     model_dtype="bfloat16" if gpu else "float32", save_steps=10_000, eval_every=0, val_rows=1,
                     val_max_new_tokens=1, learning_rate=1e-6, use_vllm=False)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    timing = {"step": [], "gen": [], "gen_tokens": [], "prefill_tokens": [], "train_tokens": []}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync()
            timing["step"].append(time.perf_counter() - self.t0)

    timer = StepTimer()
    trainer, tok = build_trainer(cfg, GRPO, [timer])
    trainer.callback_handler.callbacks.remove(timer)
    trainer.callback_handler.callbacks.insert(0, timer)  # step time stops before the validation callback runs
    model = trainer.model
    inner_generate = model.generate

    def timed_generate(*a, **kw):
        sync()
        t0 = time.perf_counter()
        out = inner_generate(*a, **kw)
        sync()
        timing["gen"].append(time.perf_counter() - t0)
        ids = kw.get("input_ids", a[0] if a else None)
        mask = kw.get("attention_mask")
        prefill = int(mask.sum()) if mask is not None else ids.numel()
        timing["prefill_tokens"].append(prefill)
        timing["gen_tokens"].append(int((out.shape[1] - ids.shape[1]) * out.shape[0]))
        timing["train_tokens"].append(prefill + timing["gen_tokens"][-1])
        return out

    model.generate = timed_generate
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() if gpu else _peak_rss_bytes()
    n = num_parameters(model)
    train_only = _train_only_seconds(model, tok, per_step, accum, timing, gpu)
    skip = 1  # burn-in step
    return {"n_params": n, "steps": timing["step"][skip:], "gen": timing["gen"][skip:],
            "gen_tokens": timing["gen_tokens"][skip:], "prefill_tokens": timing["prefill_tokens"][skip:],
            "train_tokens": timing["train_tokens"][skip:], "peak_bytes": peak, "group": g, "prompts": prompts,
            "train_only": train_only, "device": torch.cuda.get_device_name() if gpu else "cpu",
            "total_mem": torch.cuda.get_device_properties(0).total_memory if gpu else _total_ram_bytes()}


def _train_only_seconds(model, tok, per_step: int, accum: int, timing: dict, gpu: bool) -> float:
    """Forward + backward of one step's completions alone (same shapes, micro-batched): the anchor for step time."""
    import contextlib

    import torch

    seq = max(1, timing["train_tokens"][-1] // per_step)
    micro = per_step // accum
    ids = torch.randint(0, len(tok), (micro, seq), device=model.device)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if gpu else contextlib.nullcontext
    model.train()
    for _ in range(2):  # burn-in, then timed
        sync()
        t0 = time.perf_counter()
        for _ in range(accum):
            with autocast():
                model(input_ids=ids, labels=ids).loss.backward()
        sync()
        elapsed = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    return elapsed


def _report(r: dict, gpu: bool) -> None:
    n, steps = r["n_params"], r["steps"]
    step_s = sum(steps) / len(steps)
    gen_s = sum(r["gen"]) / len(r["gen"])
    gen_tok = sum(r["gen_tokens"]) / len(r["gen_tokens"])
    prefill_tok = sum(r["prefill_tokens"]) / len(r["prefill_tokens"])
    train_tok = sum(r["train_tokens"]) / len(r["train_tokens"])
    flops = 6 * n * train_tok + 2 * n * (prefill_tok + gen_tok)
    print(f"# grpo benchmark: G={r['group']} x {r['prompts']} prompts, {n / 1e6:.1f}M params, {r['device']}, "
          f"{train_tok / (r['group'] * r['prompts']):.0f} tokens per completion row")
    _line("grpo/step_time", step_s, "s/step", r["train_only"] / step_s, "train-only fwd+bwd")
    _line("grpo/generation_share", 100 * gen_s / step_s, "%", gen_s / step_s, "step")
    if gpu:
        peak_flops, bandwidth = _gpu_specs(r["device"])
        mfu = flops / step_s / peak_flops
        roofline = bandwidth / (2 * n) * r["group"] * r["prompts"]  # decode: bf16 weights read once per step
        _line("grpo/gen_tokens_per_s", gen_tok / gen_s, "tok/s", gen_tok / gen_s / roofline, "decode roofline")
        _line("grpo/mfu", 100 * mfu, "%", mfu / VERL_MFU, "verl-1.5b(13.7%)")
        _line("grpo/peak_memory", r["peak_bytes"] / 2**30, "GiB", r["peak_bytes"] / r["total_mem"], "gpu memory")
    else:
        cpu_peak = _cpu_matmul_flops()
        mfu = flops / step_s / cpu_peak
        _line("grpo/gen_tokens_per_s", gen_tok / gen_s, "tok/s", (gen_tok / gen_s) / (train_tok / step_s),
              "step tokens/s")
        _line("grpo/mfu_cpu", 100 * mfu, "%", mfu, f"cpu-fp32-matmul({cpu_peak / 1e9:.0f} GFLOP/s)")
        _line("grpo/peak_rss", r["peak_bytes"] / 2**30, "GiB", r["peak_bytes"] / r["total_mem"], "ram")
        print("# 1.5B bf16 step time, tokens/s, MFU and GPU memory need a GPU: run without --tiny on one")


def _line(name: str, value: float, unit: str, ratio: float, anchor: str) -> None:
    print(f"{name:28} {value:10.3f} {unit:7} {ratio:6.2f}x {anchor}")


def _gpu_specs(name: str) -> tuple[float, float]:
    for key, spec in GPU_SPECS.items():
        if key in name:
            return spec
    print(f"# unknown GPU {name!r}: assuming H100 SXM peaks")
    return GPU_SPECS["H100"]


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _total_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_matmul_flops(size: int = 512, reps: int = 10) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - t0)


if __name__ == "__main__":
    sys.exit(main())
