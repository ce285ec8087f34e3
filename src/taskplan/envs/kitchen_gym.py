"""The kitchen as a Gymnasium environment: text observation in, text action out.

    import gymnasium, taskplan.envs                      # the import registers the id
    env = gymnasium.make("taskplan/Kitchen-v0", task="burger", seed=42, expert=True)
    obs, info = env.reset()
    obs, reward, terminated, truncated, info = env.step(info["expert_action"])

One environment is one kitchen instance (`task` + `seed`, `layout="default"` or
`instance=<file or dict>`), as everywhere else in taskplan; `reset(seed=...)`
only seeds Gymnasium's RNG (the kitchen has no randomness of its own).

- Observation: the observation text the agent protocol shows (state, valid
  actions, goal), a `spaces.Text` over the domain's characters.
- Action: one action string, trimmed. An invalid string is not executed and
  costs no step (docs/kitchen.md 9); `info["valid"]` is False and the
  observation is unchanged. `invalid_limit` optionally truncates an episode
  after that many invalid strings (off by default: the original makes them free).
- Reward 1.0 on the step that reaches the goal, else 0.0; `terminated` then.
  `truncated` when `max_steps` executed actions (default: the task's step cap,
  ceil(1.5 x listed optimum)) pass without success.
- `info`: `valid_actions` (list, valid-action order), `goal` (goal reached),
  `steps` (executed actions), `valid` (after a step), `step_cap`, and
  `expert_action` (the planner's optimal action) when made with `expert=True`.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv

# Every character an observation or action can contain: names, phrases, templates, goal sentences.
CHARSET = string.ascii_letters + string.digits + " \n'(),.:"
MAX_OBSERVATION_CHARS = 16384   # measured max over the catalogue's seeded layouts: ~5.4k
MAX_ACTION_CHARS = 256          # longest valid action: ~50 characters


def _check_types(**args: tuple[Any, type | tuple[type, ...]]) -> None:
    """A ValueError naming the argument, instead of a TypeError deep inside (`instance=5`, `max_steps='x'`)."""
    for name, (value, kinds) in args.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            want = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
            raise ValueError(f"{name}={str(value)[:60]!r}: expected {want} (or None)")


class KitchenGymEnv(gym.Env[str, str]):
    """Gymnasium wrapper around `taskplan.kitchen.KitchenEnv` (module docstring)."""

    # text frames; render_fps only matters to video recorders
    metadata: ClassVar[dict] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, task: str | None = None, seed: int | None = None, layout: str | None = None,
                 instance: Path | str | dict | None = None, legacy_skip: bool = False,
                 max_steps: int | None = None, expert: bool = False, invalid_limit: int | None = None,
                 max_plan_seconds: float | None = 60.0, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; supported: {self.metadata['render_modes']}")
        _check_types(task=(task, str), seed=(seed, int), layout=(layout, str),
                     instance=(instance, (str, Path, dict)), max_steps=(max_steps, int),
                     invalid_limit=(invalid_limit, int), max_plan_seconds=(max_plan_seconds, (int, float)))
        self.kitchen = KitchenEnv.from_spec(task, seed, layout, instance, legacy_skip=legacy_skip)
        self.expert = expert
        self.invalid_limit = invalid_limit
        self.max_plan_seconds = max_plan_seconds
        self.render_mode = render_mode
        self.max_steps = max_steps if max_steps is not None else self._default_cap()
        if self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps}: an episode needs at least one step")
        self.observation_space = spaces.Text(MAX_OBSERVATION_CHARS, min_length=1, charset=CHARSET)
        self.action_space = spaces.Text(MAX_ACTION_CHARS, min_length=1, charset=CHARSET)
        self._plan: list[str] = []     # the expert's remaining plan from the current state
        self._invalid = 0
        self._over = True              # reset() before the first step

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        obs = self.kitchen.reset()
        self._plan, self._invalid, self._over = [], 0, self.kitchen.done
        return obs, self._info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self._over:
            raise gym.error.ResetNeeded("the episode has ended (or never started); call reset() first")
        text = action.strip() if isinstance(action, str) else ""
        result = self.kitchen.step(text)
        if result.valid:
            self._advance_plan(text)
        else:
            self._invalid += 1
        terminated = self.kitchen.done
        truncated = not terminated and (self.kitchen.steps >= self.max_steps or (
            self.invalid_limit is not None and self._invalid >= self.invalid_limit))
        self._over = terminated or truncated
        reward = 1.0 if result.valid and terminated else 0.0
        info = self._info()
        info["valid"] = result.valid
        if result.error:
            info["error"] = result.error
        return self.kitchen.observation(), reward, terminated, truncated, info

    def render(self) -> str | None:
        return self.kitchen.observation() if self.render_mode == "ansi" else None

    # -- expert ------------------------------------------------------------------------------

    def expert_action(self) -> str | None:
        """The optimal action from the current state (the planner's unique tie-break); None at the goal."""
        if self.kitchen.done:
            return None
        if not self._plan:
            k = self.kitchen
            self._plan = list(plan_state(k.world, k.state, k.goal, max_seconds=self.max_plan_seconds).texts)
        return self._plan[0]

    # -- helpers -----------------------------------------------------------------------------

    def _advance_plan(self, text: str) -> None:
        # Following the expert keeps its plan valid (the tie-break is a property of the state);
        # any other action forces a re-plan on the next request.
        if self._plan and self._plan[0] == text:
            self._plan.pop(0)
        else:
            self._plan = []

    def _info(self) -> dict:
        info = {"valid_actions": self.kitchen.action_texts(), "goal": self.kitchen.done,
                "steps": self.kitchen.steps, "step_cap": self.max_steps, "task": self.kitchen.task.name}
        if self.expert:
            info["expert_action"] = self.expert_action()
        return info

    def _default_cap(self) -> int:
        cap = self.kitchen.task.step_cap
        if cap is not None:
            return cap
        # extras without a listed optimum: 1.5 x the instance's true optimum, as evaluation does
        k = self.kitchen
        opt = plan_state(k.world, k.initial, k.goal, max_seconds=self.max_plan_seconds).optimal_steps
        return max(1, math.ceil(1.5 * opt))
