"""A kitchen episode: reset, step by action text, goal check, observation.

    env = KitchenEnv.from_spec("burger", seed=42)
    obs = env.reset()
    result = env.step("Move robot1 from table1 to table2")

`step` executes only valid actions; an invalid string changes nothing and
costs no step (the original's rule), the result says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskplan.errors import InstanceError
from taskplan.kitchen.goals import CompiledGoal, compile_goal
from taskplan.kitchen.layout import build, default_instance, load_instance, seeded_instance, validate_instance
from taskplan.kitchen.render import render_observation
from taskplan.kitchen.state import Action, State, step, valid_actions
from taskplan.kitchen.tasks import Task, get_task


def resolve_instance(task: str | None = None, seed: int | None = None, layout: str | None = None,
                     instance: Path | str | dict | None = None) -> dict:
    """One instance from exactly one of --seed, --layout default, --instance FILE."""
    given = sum(x is not None for x in (seed, layout, instance))
    if given != 1:
        raise InstanceError("give exactly one of --seed N, --layout default or --instance FILE")
    if instance is not None:
        data = instance if isinstance(instance, dict) else load_instance(instance)
        if isinstance(instance, dict):
            validate_instance(data)
        if task is not None and get_task(task).name != get_task(data["task"]).name:
            raise InstanceError(f"instance is for task {data['task']!r}, not {task!r}; drop --task or fix it")
        return data
    if task is None:
        raise InstanceError("--task NAME is required with --seed or --layout")
    if layout is not None:
        if layout != "default":
            raise InstanceError(f"unknown layout {layout!r}; the only named layout is 'default'")
        return default_instance(task)
    return seeded_instance(task, seed)


@dataclass
class StepResult:
    valid: bool
    done: bool          # goal reached
    error: str | None   # why the action was not executed


class KitchenEnv:
    def __init__(self, instance: dict, legacy_skip: bool = False):
        self.instance = instance
        self.task: Task = get_task(instance["task"])
        self.world, self.initial = build(instance, legacy_skip=legacy_skip)
        self.goal: CompiledGoal = compile_goal(self.task.goal, self.world)
        self.state: State = self.initial
        self.steps = 0
        self.done = False

    @classmethod
    def from_spec(cls, task: str | None = None, seed: int | None = None, layout: str | None = None,
                  instance: Path | str | dict | None = None, legacy_skip: bool = False) -> KitchenEnv:
        return cls(resolve_instance(task, seed, layout, instance), legacy_skip=legacy_skip)

    def reset(self) -> str:
        self.state, self.steps, self.done = self.initial, 0, self.goal.satisfied(self.initial)
        return self.observation()

    def actions(self) -> list[Action]:
        return valid_actions(self.world, self.state)

    def action_texts(self) -> list[str]:
        return [self.world.action_text(a) for a in self.actions()]

    def observation(self) -> str:
        return render_observation(self.world, self.state, self.action_texts())

    def step(self, text: str) -> StepResult:
        for act in self.actions():
            if self.world.action_text(act) == text:
                self.state = step(self.world, self.state, act)
                self.steps += 1
                self.done = self.goal.satisfied(self.state)
                return StepResult(True, self.done, None)
        return StepResult(False, self.done, f"action {text!r} is not valid")

    def replay(self, actions: list[str]) -> dict:
        """Validate a plan: per-step trace (sorted valid actions before, valid, goal after). The task's step
        cap ends the episode as in evaluation: a plan that reaches the goal only after it is no success."""
        self.reset()
        cap = self.task.step_cap
        trace, first_invalid = [], None
        for n, text in enumerate(actions):
            if cap is not None and self.steps >= cap:
                break
            before = sorted(self.action_texts())
            res = self.step(text)
            trace.append({"step": n, "valid_actions": before, "action": text, "valid": res.valid,
                          "goal": self.done})
            if not res.valid:
                first_invalid = n
                break
            if self.done:
                break
        return {"task": self.task.name, "success": self.done, "steps": self.steps, "step_cap": cap,
                "capped": not self.done and first_invalid is None and len(trace) < len(actions),
                "first_invalid": first_invalid, "trace": trace}
