"""The expert's reasoning: the subgoal an expert step serves, written before its action.

    subgoal_steps(plan)                # per step: the later actions that are not moves or waits, in order
    plan_stations(plan, "table1")     # per step: the station the robot stands at when it acts
    reasoning_text([("Stack patty1 on top of bottombun1 using robot1", "table2")], 1)
                                       # "next: Stack patty1 on top of bottombun1 using robot1; at: table2"
    episode_reasonings(episode, 1)     # one reasoning per step of a trajectory episode

The agent protocol asks for a `Reasoning:` part before the `Action:` line
(docs/kitchen.md 9). With reasoning on, an expert reply is

    Reasoning: next: Stack patty1 on top of bottombun1 using robot1; at: table2
    Action: Move robot1 from fryer1 to table2

where the reasoning names the first action of the expert's minimal plan, from
this state on, that is neither a move nor a wait (the step the current action
prepares), then the station where the robot will stand when it does it (with
`depth` > 1, the next `depth` subgoals: "next: A; at: S; then: B"). It is a
pure function of the state (the plan is the unique lexicographically first
one), so the reply is still deterministic. For a small model it splits the
hardest decision, where to move, into three easy ones: which object is needed
next (the recipe), where that happens (a copy from the `<item> is at
<station>` line of the object it acts on), and the action: the subgoal itself
when the robot already stands there, else a move whose destination is copied
from a few tokens back.

On an expert trajectory the plan from step t is the trajectory's own expert
actions; on a noisy one it is too until a noise step, after which the plan is
recomputed from the replayed state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv

_NOT_SUBGOAL = ("Move ", "Do nothing")
_MOVE = re.compile(r"^Move robot1 from (\S+) to (\S+)$")
_ROBOT_AT = re.compile(r"^robot1 is at (\S+)$", re.MULTILINE)
Subgoal = tuple[str, str]    # (action, station the robot stands at when it acts)


def is_subgoal(action: str) -> bool:
    return not action.startswith(_NOT_SUBGOAL)


def robot_location(observation: str) -> str:
    """The station robot1 stands at, read from an observation (full or compact text)."""
    found = _ROBOT_AT.search(observation)
    if found is None:
        raise ValueError("observation has no 'robot1 is at <station>' line")
    return found.group(1)


def plan_stations(plan: Sequence[str], start: str) -> list[str]:
    """For each action of a plan, the station robot1 stands at when it is executed (moves are the only
    actions that change it)."""
    out, here = [], start
    for action in plan:
        out.append(here)
        move = _MOVE.match(action)
        if move:
            here = move.group(2)
    return out


def subgoal_steps(plan: Sequence[str], start: str) -> list[list[Subgoal]]:
    """For each step of a plan, the subgoals (actions that are not moves or waits) at or after it, in order,
    each with its station; `start` is where robot1 stands before the plan's first action."""
    stations = plan_stations(plan, start)
    out: list[list[Subgoal]] = [[] for _ in plan]
    later: list[Subgoal] = []
    for i in range(len(plan) - 1, -1, -1):
        if is_subgoal(plan[i]):
            later = [(plan[i], stations[i]), *later]
        out[i] = later
    return out


def reasoning_text(subgoals: Sequence[Subgoal], depth: int) -> str | None:
    """`next: A; at: S; then: B` for the first `depth` subgoals (None when depth is 0 or there is none)."""
    if depth <= 0 or not subgoals:
        return None
    (first, station), *rest = subgoals[:depth]
    return "; ".join([f"next: {first}", f"at: {station}", *(f"then: {g}" for g, _ in rest)])


def episode_reasonings(episode: dict, depth: int = 1) -> list[str | None]:
    """The expert reasoning at every step of a trajectory episode (see the module docstring)."""
    steps = episode["steps"]
    if depth <= 0:
        return [None] * len(steps)
    here = [robot_location(st["observation"]) for st in steps]
    replanned: dict[int, list[Subgoal]] = {}
    out: list[str | None] = []
    for t in range(len(steps)):
        found: list[Subgoal] = []
        for j in range(t, len(steps)):
            st = steps[j]
            if st["action"] != st["expert_action"]:   # noise: the rest of the plan is not in the file
                if j not in replanned:
                    replanned[j] = _replanned_subgoals(episode, j)
                found += replanned[j]
                break
            if is_subgoal(st["expert_action"]):
                found.append((st["expert_action"], here[j]))
                if len(found) >= depth:
                    break
        out.append(reasoning_text(found, depth))
    return out


def _replanned_subgoals(episode: dict, t: int) -> list[Subgoal]:
    """Replay the episode's executed actions up to step t and ask the planner for the subgoals from there."""
    env = KitchenEnv.from_spec(episode["task"], seed=episode["seed"])
    env.reset()
    for st in episode["steps"][:t]:
        env.step(st["action"])
    plan = plan_state(env.world, env.state, env.goal, max_seconds=60.0).texts
    steps = subgoal_steps(plan, robot_location(env.observation()))
    return steps[0] if steps else []
