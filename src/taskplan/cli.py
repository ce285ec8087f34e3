"""The `taskplan` command line: one typer app, every stage a subcommand.

    taskplan tasks --json
    taskplan plan --task burger --seed 42 --json
    taskplan replay --task burger --layout default --actions plan.txt --json

Kitchen commands live here; stage commands (generate, sft, evaluate, ...) are
registered from `taskplan.commands.*`. Heavy libraries (torch, transformers,
mlflow, prefect, great_expectations) are imported inside the commands that use
them so that `taskplan plan` answers in well under a second.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from taskplan.catalog import stage_specs
from taskplan.commands import JsonOpt
from taskplan.commands import data as data_commands
from taskplan.commands import stages as stage_commands
from taskplan.commands import tracking as tracking_commands
from taskplan.config import effective_config
from taskplan.env import quiet_env
from taskplan.errors import ConfigError, InstanceError, TaskplanError
from taskplan.expert.planner import plan_instance
from taskplan.io import atomic_write_json, parse_json_text, read_text_input
from taskplan.kitchen.env import KitchenEnv, resolve_instance
from taskplan.kitchen.parse import parse_action
from taskplan.kitchen.tasks import all_tasks

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Train and evaluate small LLM planners on long kitchen tasks.")

quiet_env()   # telemetry off, hub offline (taskplan.env): before any library reads them

TaskOpt = Annotated[Optional[str], typer.Option("--task", help="Task name, e.g. cheeseburger (see `taskplan tasks`).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seeded random layout (evaluation: 42, 84, ..., 420).")]
LayoutOpt = Annotated[Optional[str], typer.Option("--layout", help="'default': the task's unrandomized default layout.")]
InstanceOpt = Annotated[Optional[Path], typer.Option("--instance", help="Instance JSON file (see `taskplan instance`).")]
LegacyOpt = Annotated[bool, typer.Option("--legacy-skip", help="Reproduce the original's skipped timer tick.")]


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Debug logging on stderr.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


# The one params section that is not a stage of the catalog (taskplan/catalog.py): the flow's own settings.
EXTRA_SECTIONS = {"pipeline": ("taskplan.orchestrate.flow", "PipelineConfig")}


@app.command()
def params(stage: Annotated[Optional[str], typer.Argument(help="One section, e.g. sft (default: all).")] = None,
           params_file: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
           overrides: Annotated[Optional[list[str]], typer.Option("--set", help="section.key=value override.")] = None,
           as_json: JsonOpt = False) -> None:
    """Print the effective configuration of a stage: each value, where it came from and what it means."""
    sections = {name: spec.config for name, spec in stage_specs().items()}
    sections |= {name: getattr(importlib.import_module(mod), cls) for name, (mod, cls) in EXTRA_SECTIONS.items()}
    chosen = [stage] if stage else list(sections)
    unknown = [s for s in chosen if s not in sections]
    if unknown:
        raise ConfigError(f"unknown stage {unknown[0]!r}; try one of: {', '.join(sections)}")
    doc = {}
    for name in chosen:
        doc[name] = effective_config(sections[name], name, params_file, list(overrides or []))
    if as_json:
        typer.echo(json.dumps(doc, default=str))
        return
    for name, rows in doc.items():
        typer.echo(f"[{name}]")
        for r in rows:
            value = json.dumps(r["value"], default=str)
            typer.echo(f"  {r['name']:28} = {value:32} ({r['source']})" + (f"  # {r['help']}" if r["help"] else ""))


@app.command()
def tasks(as_json: JsonOpt = False) -> None:
    """List the task catalogue (name, kind, listed optimum, step cap)."""
    rows = [t.summary() for t in all_tasks() if t.evaluable]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['id']:3} {r['name']:80} {r['kind']:5} opt={r['listed_opt']:3} cap={r['step_cap']}")


@app.command()
def instance(task: TaskOpt = None, seed: SeedOpt = None, layout: LayoutOpt = None,
             out: Annotated[Optional[Path], typer.Option(help="Write to FILE instead of stdout.")] = None) -> None:
    """Write the seeded (or default) layout of a task as an instance file."""
    inst = resolve_instance(task, seed, layout, None)
    if out:
        atomic_write_json(out, inst)   # refuses a directory, FIFO or device: only a regular file or a new path
    else:
        typer.echo(json.dumps(inst, indent=2))


@app.command()
def plan(task: TaskOpt = None, seed: SeedOpt = None, layout: LayoutOpt = None, instance: InstanceOpt = None,
         legacy_skip: LegacyOpt = False, as_json: JsonOpt = False,
         max_seconds: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 300.0) -> None:
    """Optimal (minimal, uniquely tie-broken) plan of the expert."""
    inst = resolve_instance(task, seed, layout, instance)
    result = plan_instance(inst, legacy_skip=legacy_skip, max_seconds=max_seconds)
    doc = {"task": inst["task"], "seed": seed, "optimal_steps": len(result.texts), "actions": result.texts,
           "expanded": result.expanded, "seconds": round(result.seconds, 4)}
    if as_json:
        typer.echo(json.dumps(doc))
        return
    for n, a in enumerate(result.texts, 1):
        typer.echo(f"{n:3}. {a}")
    typer.echo(f"{doc['optimal_steps']} steps, {doc['expanded']} nodes expanded, {doc['seconds']} s")


@app.command()
def replay(actions: Annotated[Path, typer.Option("--actions", help="Plan file: one action per line (or a JSON list).")],
           task: TaskOpt = None, seed: SeedOpt = None, layout: LayoutOpt = None, instance: InstanceOpt = None,
           legacy_skip: LegacyOpt = False, as_json: JsonOpt = False) -> None:
    """Validate a plan: success, steps, first invalid step (--json: per-step trace)."""
    plan_actions = _read_actions(actions)
    env = KitchenEnv.from_spec(task, seed, layout, instance, legacy_skip=legacy_skip)
    result = env.replay(plan_actions)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        bad = result["first_invalid"]
        typer.echo(f"success={result['success']} steps={result['steps']}"
                   + (f" first_invalid={bad} ({plan_actions[bad]!r})" if bad is not None else "")
                   + (f" (stopped at the step cap {result['step_cap']})" if result["capped"] else ""))
    if not result["success"]:
        raise typer.Exit(1)


@app.command()
def play(task: TaskOpt = None, seed: SeedOpt = None, layout: LayoutOpt = None, instance: InstanceOpt = None,
         legacy_skip: LegacyOpt = False) -> None:
    """Play a task in the terminal: type an action or its number; 'q' quits."""
    if sys.stdin is None or sys.stdin.closed or sys.stdout is None or sys.stdout.closed:
        raise ConfigError("play needs an open standard input and output (it reads actions from the "
                          "terminal); run it in a terminal, or use `taskplan replay --actions FILE`")
    env = KitchenEnv.from_spec(task, seed, layout, instance, legacy_skip=legacy_skip)
    env.reset()
    try:
        _play_loop(env, parse_action)
    except (RuntimeError, EOFError, OSError) as err:   # a terminal that goes away mid-game
        raise ConfigError(f"play lost its terminal ({_first(err)}); run it in a terminal, or use "
                          "`taskplan replay --actions FILE`") from None
    typer.echo(("Goal reached" if env.done else "Goal not reached") + f" in {env.steps} steps.")


def _first(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:120]


def _play_loop(env: Any, parse_action: Any) -> None:
    cap = env.task.step_cap
    while not env.done and (cap is None or env.steps < cap):
        texts = env.action_texts()
        obs = env.observation().split("\nValid Actions:\n")[0]
        typer.echo(obs + "\n\nValid Actions:")
        for n, t in enumerate(texts, 1):
            typer.echo(f"  {n:2}. {t}")
        typer.echo(f"Goal: {env.task.goal_text}   (step {env.steps}" + (f" of {cap})" if cap else ")"))
        try:
            reply = typer.prompt("action", default="", show_default=False).strip()
        except (typer.Abort, EOFError):   # end of input (Ctrl-D, a file that ends): the game ends there
            typer.echo("")
            break
        if reply.lower() in ("q", "quit", "exit"):
            break
        if reply.isdigit() and 1 <= int(reply) <= len(texts):
            reply = texts[int(reply) - 1]
        parsed = parse_action(reply, texts)
        if not parsed.ok:
            typer.echo(f"Error Feedback: {parsed.error}")
            continue
        env.step(parsed.action)


def _read_actions(path: Path) -> list[str]:
    text = read_text_input(path, "plan file", InstanceError, "pass --actions FILE", 16 << 20)
    if text.lstrip().startswith(("[", "{")):
        doc = parse_json_text(text, path, "plan file", InstanceError,
                              "give a JSON list of action strings, or one action per line")
        doc = doc.get("actions", doc) if isinstance(doc, dict) else doc
        if not isinstance(doc, list) or not all(isinstance(a, str) for a in doc):
            raise InstanceError(f"plan file {path} must be a list of action strings")
        return doc
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


# Stage commands: one per stage of the catalog (taskplan.commands.stages), plus the commands of
# taskplan.commands.data and .tracking; they join this app here, without importing this module back.
for _commands in (stage_commands, data_commands, tracking_commands):
    app.registered_commands += _commands.app.registered_commands


def main() -> None:
    """Console-script entry point: expected failures and usage errors print one line and exit 2."""
    try:
        rc = app(standalone_mode=False)
    except TaskplanError as err:
        typer.echo(f"taskplan: error: {err}", err=True)
        raise SystemExit(2) from None
    except typer.Exit as ex:
        raise SystemExit(ex.exit_code) from None
    except typer.Abort:
        typer.echo("taskplan: aborted", err=True)
        raise SystemExit(130) from None
    except Exception as err:   # typer's (or click's) usage errors: bad option value, no such command or option
        if not _is_usage_error(err):
            raise
        raise SystemExit(_usage_error(err)) from None
    if isinstance(rc, int) and rc:
        raise SystemExit(rc)


def _is_usage_error(err: Exception) -> bool:
    """Recent typer raises the exceptions of its vendored click (typer.TyperException); older typer, click's."""
    return type(err).__module__.split(".")[0] in ("typer", "click") and hasattr(err, "format_message")


def _usage_error(err: Any) -> int:
    """Print a usage error as one line and return its exit code (2)."""
    if type(err).__name__ == "NoArgsIsHelpError":   # `taskplan` alone: typer has printed the help already
        return err.exit_code
    ctx = getattr(err, "ctx", None)
    message = " ".join(err.format_message().split()).rstrip(".")
    typer.echo(f"taskplan: error: {message} (see `{ctx.command_path if ctx else 'taskplan'} --help`)", err=True)
    return err.exit_code or 2
