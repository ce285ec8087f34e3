"""Evaluation throughput: batched multi-turn rollouts vs one episode at a time, same model, same run.

    python -m benchmarks.bench_eval_throughput                     # cpu-tiny sizes, random init, 40 episodes
    python -m benchmarks.bench_eval_throughput --model models/sft  # a trained policy folder
    python -m benchmarks.bench_eval_throughput --model qwen2.5-1.5b --device cuda   # 1.5B architecture, random init

40 episodes (the 4 paper tasks x 10 evaluation seeds) run through the real
rollout code (`taskplan.evaluate.rollout.run_episodes`) twice: all episodes
advancing together (one batched `generate` per step) and with `max_batch=1`
(one episode at a time, one `generate` per reply). The anchor is the
sequential run measured in the same process. A random-weight model answers
garbage, so every episode takes the retry path (15 replies, no step), which
fixes the amount of work: both runs make the same number of replies. Each
reply budget (`--max-new-tokens`, default 32 then 4) is measured separately:
a small budget shows the prompt (prefill) cost, a large one the decode cost.
One burn-in rollout first; `torch.cuda.synchronize()` around GPU timings.
Output lines: `name  value unit  ratio x anchor`.

What to expect: on a CPU the cost of a reply is the prefill of a ~450-850
token prompt (compute-bound, ~30 ms for the cpu-tiny model on one core), which
batching cannot share; only decode steps amortise (a batch of 8 costs ~3x one
sequence per step). Measured on the shared 2-core dev box (1 thread): 0.9-1.6x.
The >= 10x of the issue is a GPU property (decode is memory-bound there).
Run with `--threads 1` on a busy machine: torch's default threads stall at
barriers when the cores are shared.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

TASKS = ("cheese_sandwich", "burger", "cheeseburger", "double_cheeseburger")
TINY = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2}   # params.yaml model_init, profile cpu-tiny


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder, or 'qwen2.5-1.5b' (random init); "
                   "default: the cpu-tiny Qwen2 with a domain tokenizer, random init")
    p.add_argument("--seeds", type=int, default=10, help="evaluation seeds per task (10 -> 40 episodes)")
    p.add_argument("--max-new-tokens", default="32,4", help="comma-separated reply budgets to measure")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--pad-tolerance", type=float, default=None,
                   help="batched run: longest prompt <= (1 + x) x shortest per generate call (default: auto, "
                   "CPU 0, GPU unlimited)")
    args = p.parse_args(argv)
    from taskplan.env import quiet_env

    quiet_env()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import torch

    from taskplan.evaluate.policies import HFPolicy, PolicyOptions
    from taskplan.evaluate.rollout import EpisodeSpec, RolloutSettings, run_episodes
    from taskplan.kitchen.tasks import EVAL_SEEDS

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, label = _load(args.model, device)
    specs = [EpisodeSpec(t, s) for t in TASKS for s in EVAL_SEEDS[:args.seeds]]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    prompt_tokens = _mean_prompt_tokens(HFPolicy(model, tokenizer), specs)
    print(f"# {label} on {device} ({torch.get_num_threads()} CPU threads), {len(specs)} episodes, "
          f"mean prompt {prompt_tokens:.0f} tokens")

    burn = HFPolicy(model, tokenizer, options=PolicyOptions(max_new_tokens=2, batch_size=len(specs)))
    run_episodes(burn, specs[:2], RolloutSettings(max_batch=2))
    for budget in [int(x) for x in args.max_new_tokens.split(",") if x.strip()]:
        policy = HFPolicy(model, tokenizer, options=PolicyOptions(max_new_tokens=budget, batch_size=len(specs),
                                                                  pad_tolerance=args.pad_tolerance))
        timings, replies = {}, {}
        for mode, max_batch in (("batched", len(specs)), ("sequential", 1)):
            sync()
            start = time.perf_counter()
            episodes = run_episodes(policy, specs, RolloutSettings(max_batch=max_batch))
            sync()
            timings[mode] = time.perf_counter() - start
            replies[mode] = sum(e.replies for e in episodes)
        seq = timings["sequential"]
        for mode in ("batched", "sequential"):
            t = timings[mode]
            print(f"eval/{mode}/new{budget}  {len(specs) / t:.3f} episodes/s  {seq / t:.2f}x sequential"
                  f"   ({t:.1f} s, {replies[mode]} replies, {replies[mode] / t:.1f} replies/s)")
    return 0


def _load(model_arg: str | None, device: str):

    from taskplan.model import build_policy, load_policy, load_tokenizer, qwen2_config
    from taskplan.model.builder import set_generation_defaults

    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if model_arg and Path(model_arg).exists():
        model, tokenizer = load_policy(model_arg, dtype=dtype), load_tokenizer(model_arg)
        label = f"model {model_arg}"
    else:
        tokenizer = _domain_tokenizer()
        if model_arg:   # a known architecture, random init (e.g. qwen2.5-1.5b)
            model = load_policy(model_arg, dtype=dtype, random_init=True, seed=0)
        else:
            vocab = -(-len(tokenizer) // 64) * 64
            config = qwen2_config(vocab_size=vocab, max_position_embeddings=2048, rope_theta=10000.0,
                                  tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **TINY)
            model = build_policy(config, dtype="float32", seed=0)
        set_generation_defaults(model, tokenizer)
        label = f"{model_arg or 'cpu-tiny'} (random init)"
    n = sum(p.numel() for p in model.parameters())
    return model.to(device), tokenizer, f"{label}, {n / 1e6:.2f}M parameters"


def _domain_tokenizer():
    """The cpu-tiny domain tokenizer, trained on the prompts of training seeds (never the evaluation seeds)."""
    from taskplan.data.prompts import answer_text, build_messages
    from taskplan.kitchen import KitchenEnv
    from taskplan.model import train_domain_tokenizer

    def texts():
        for task in TASKS:
            for seed in range(1000, 1012):
                env = KitchenEnv.from_spec(task, seed=seed)
                env.reset()
                for m in build_messages(env.observation(), prev_action=env.action_texts()[0]):
                    yield m["role"]
                    yield m["content"]
                yield from (answer_text(a) for a in env.action_texts())

    return train_domain_tokenizer(texts(), vocab_size=1024)


def _mean_prompt_tokens(policy, specs) -> float:
    from taskplan.data.prompts import build_messages
    from taskplan.kitchen import KitchenEnv

    lengths = []
    for spec in specs:
        env = KitchenEnv.from_spec(spec.task, seed=spec.seed)
        env.reset()
        text = policy.prompt_text(build_messages(env.observation()))
        lengths.append(len(policy.tokenizer(text, add_special_tokens=False)["input_ids"]))
    return sum(lengths) / len(lengths)


if __name__ == "__main__":
    sys.exit(main())
