"""The model card of the kitchen base: `models/base/README.md`, written from the pretrain stage's own records.

    cfg = load_config(ModelCardConfig, "model_card", "params.yaml")
    run_model_card(cfg)        # models/base/README.md (atomic), the last command of the frozen `pretrain` stage

Nothing in the card is typed by hand: the data (tasks, seeds, episodes, rows,
skipped planner calls) comes from the generate and build-dataset records, the
training (steps, wall-clock, tokens/s, validation accuracy) from the pretrain
metrics, the size from the weights themselves, and the per-task numbers from
the base's own evaluation (multi-turn SR with 95 % Wilson intervals, and
single-turn accuracy split by row kind), zero-shot on the four paper tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from taskplan.catalog import StageSpec
from taskplan.errors import ConfigError
from taskplan.evaluate.stats import wilson
from taskplan.io import atomic_write_text, read_json_input
from taskplan.kitchen.tasks import PAPER_TASKS


@dataclass(frozen=True, slots=True)
class ModelCardConfig:
    section: ClassVar[str] = "model_card"
    model_dir: Path = Path("models/base")                              # the card goes to <model_dir>/README.md
    generate_metrics: Path = Path("outputs/pretrain/generate.json")    # the base's trajectories
    manifest: Path = Path("outputs/pretrain/trajectories/manifest.json")
    dataset_stats: Path = Path("outputs/pretrain/build_dataset.json")  # its single-turn rows
    train_metrics: Path = Path("metrics/pretrain.json")                # its training run
    eval_path: Path = Path("metrics/pretrain_eval.json")               # multi-turn SR per task
    single_turn_path: Path = Path("metrics/pretrain_single_turn.json")  # single-turn outcomes per task
    policy: str = "base"                                               # its name in eval_path / single_turn_path


@dataclass(frozen=True, slots=True)
class ModelCardResult:
    path: Path
    metrics: dict

    def summary(self) -> str:
        return f"model card -> {self.path}"


def _read(path: Path) -> Any:
    return read_json_input(path, "record", ConfigError, "run the `pretrain` stage's earlier commands (again) first")


def parameter_count(model_dir: Path) -> int:
    """Parameters stored in the folder's safetensors files (tied weights counted once)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            total += sum(_numel(st.get_slice(key).get_shape()) for key in st.keys())
    return total


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _fmt(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_card(cfg: ModelCardConfig) -> tuple[str, dict]:
    gen, manifest, ds = _read(cfg.generate_metrics), _read(cfg.manifest), _read(cfg.dataset_stats)
    train, ev, st = _read(cfg.train_metrics), _read(cfg.eval_path), _read(cfg.single_turn_path)
    config = _read(Path(cfg.model_dir) / "config.json")
    params = parameter_count(cfg.model_dir)
    if cfg.policy not in ev or cfg.policy not in st:
        raise ConfigError(f"policy {cfg.policy!r} is missing from {cfg.eval_path} or {cfg.single_turn_path}; "
                          "evaluate the base under that name")
    tasks = manifest["tasks"]
    seeds = manifest["train_seeds"]
    skipped = gen.get("skipped") or {}
    rows = ds.get("rows", {})
    hours = train.get("wall_seconds", 0) / 3600
    lines = [
        "# taskplan kitchen base", "",
        "A small Qwen2 causal LM with a tokenizer trained on the kitchen's own text, pretrained on the "
        "single-turn rows of the kitchen tasks that are **not** the four paper tasks. The default `cpu-tiny` "
        "profile starts SFT and GRPO on the paper tasks from it, as the paper starts from an instruct model "
        "that has never seen them. Made by the frozen DVC stage `pretrain` "
        "(`dvc unfreeze pretrain && dvc repro pretrain`; the profile `kitchen-base` in params.yaml holds its "
        "settings). Everything below is read from that stage's records.", "",
        "## Model", "",
        f"- Architecture: Qwen2, hidden {config.get('hidden_size')}, {config.get('num_hidden_layers')} layers, "
        f"{config.get('num_attention_heads')} attention heads ({config.get('num_key_value_heads')} key/value), "
        f"MLP {config.get('intermediate_size')}, vocabulary {config.get('vocab_size')}, tied embeddings: "
        f"{config.get('tie_word_embeddings')}.",
        f"- Parameters: {params:,} ({params / 1e6:.2f}M).",
        "- Prompt style: compact observation; replies are `Reasoning: next: <subgoal>; at: <station>` then "
        "`Action: <action>` (taskplan.data.reasoning).", "",
        "## Data", "",
        f"- Tasks ({len(tasks)}): " + ", ".join(f"`{t}`" for t in tasks) + ".",
        f"- Seeds {seeds[0]}..{seeds[0] + seeds[1] - 1} per task (disjoint from the held-out evaluation seeds), "
        f"noise levels {manifest['noise_levels']} of the noisy expert, expert labels at every visited state.",
        f"- Episodes: {gen.get('episodes')}, steps: {gen.get('steps')}; planner calls that ran out of the "
        f"per-call limit skip their episode: {sum(skipped.values())} skipped "
        f"({', '.join(f'{k}: {v}' for k, v in skipped.items()) or 'none'}).",
        f"- Single-turn rows: train {rows.get('train')}, validation {rows.get('validation')} "
        "(validation = held-out seeds, clean expert path).",
        "- Left out: the four paper tasks' labelled rows (SFT and GRPO on them must mean what they mean in the "
        "paper); `lettuce_tomato_fried_chicken_sandwich` and `potato_soup` (one prompt, two expert labels: the "
        "observation does not show the fryer's or pot's timer, so the rows contradict each other; GX "
        "`prompt_consistent` fails); the other soups and the two- or three-dish tasks (S9, A3, A4, A7-A9: "
        "long prompts and slow planning for little of the sandwich/burger structure the paper tasks need).",
        "", "## Training", "",
        f"- {int(train.get('steps', 0))} steps in {train.get('wall_seconds', 0):.0f} s wall-clock ({hours:.2f} h, "
        f"{train.get('train_seconds', 0):.0f} s in training steps) on 2 CPU cores, "
        f"{_fmt(train.get('tokens_per_second'), 0)} tokens/s.",
        f"- Final loss {_fmt(train.get('final_loss'), 3)}; single-turn validation accuracy (greedy, exact "
        f"expert reply) {_fmt(train.get('base_val_accuracy'))} -> {_fmt(train.get('val_accuracy'))}.", "",
        "## Per task", "",
        "Multi-turn SR: 10 held-out seeds per task (42, 84, ..., 420), paper protocol (free text, step cap = "
        "ceil(1.5 x listed optimum), invalid replies cost no step, 5 retries x 3 exhausted turns), greedy. "
        "Single-turn: validation rows of held-out seeds, the reply judged by the planner.", "",
        "| task | paper task | SR [95 % CI] | ASAT | single-turn acc | move rows acc | other rows acc | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table = ev[cfg.policy]
    out_metrics: dict[str, Any] = {"parameters": params}
    for task in sorted(table, key=lambda t: (t not in PAPER_TASKS, t)):
        m = table[task]
        lo, hi = wilson(round(m["sr"] * m["episodes"]), m["episodes"])
        single = st[cfg.policy].get(f"task/{task}", {})
        moves = st[cfg.policy].get(f"task/{task}/move", {})
        other = st[cfg.policy].get(f"task/{task}/other", {})
        lines.append(f"| {task} | {'yes (zero-shot)' if task in PAPER_TASKS else 'no'} | {m['sr']:.1f} "
                     f"[{lo:.2f}, {hi:.2f}] | {_fmt(m.get('asat'), 1)} | {_fmt(single.get('accuracy'))} | "
                     f"{_fmt(moves.get('accuracy'))} | {_fmt(other.get('accuracy'))} | {single.get('rows', 0)} |")
        out_metrics[f"sr/{task}"] = m["sr"]
    allrow = st[cfg.policy].get("all", {})
    lines += ["", f"All validation rows judged: accuracy {_fmt(allrow.get('accuracy'))}, optimal "
              f"{_fmt(allrow.get('optimal'))}, invalid {_fmt(allrow.get('invalid'))}.", ""]
    return "\n".join(lines), out_metrics


def run_model_card(cfg: ModelCardConfig) -> ModelCardResult:
    text, metrics = render_card(cfg)
    path = Path(cfg.model_dir) / "README.md"
    atomic_write_text(path, text)
    return ModelCardResult(path, metrics)


STAGE = StageSpec("model_card", ModelCardConfig, run_model_card,
                  "Write the kitchen base's model card (models/base/README.md) from the pretrain stage's records.",
                  pipeline=False, tracked=False)   # a step of the frozen pretrain stage
