"""The expert's reasoning: the subgoal an expert step serves, written before its action.

    subgoal_steps(plan)                # per step: the later actions that are not moves or waits, in order
    reasoning_text(["Pick up patty1 from stove3 using robot1"], 1)   # "next: Pick up patty1 from stove3 ..."
    episode_reasonings(episode, 1)     # one reasoning per step of a trajectory episode

The agent protocol asks for a `Reasoning:` part before the `Action:` line
(spec KITCHEN.md 9). With reasoning on, an expert reply is

    Reasoning: next: Pick up patty1 from stove3 using robot1
    Action: Move robot1 from table1 to stove3

where the reasoning names the first action of the expert's minimal plan, from
this state on, that is neither a move nor a wait: the step the current action
prepares (with `depth` > 1, the next `depth` such subgoals: "next: A; then: B"). It is a pure function of the state (the plan is the unique
lexicographically first one), so the reply is still deterministic. For a small
model it splits the hardest decision, where to move, into two easy ones: which
object is needed next (the recipe), then where it is (a copy from the `<item>
is at <station>` line), after which the action copies the station name from a
few tokens back.

On an expert trajectory the plan from step t is the trajectory's own expert
actions; on a noisy one it is too until a noise step, after which the plan is
recomputed from the replayed state.
"""

from __future__ import annotations

from collections.abc import Sequence

_NOT_SUBGOAL = ("Move ", "Do nothing")


def is_subgoal(action: str) -> bool:
    return not action.startswith(_NOT_SUBGOAL)


def subgoal_steps(plan: Sequence[str]) -> list[list[str]]:
    """For each step of a plan, the subgoals (actions that are not moves or waits) at or after it, in order."""
    out: list[list[str]] = [[] for _ in plan]
    later: list[str] = []
    for i in range(len(plan) - 1, -1, -1):
        if is_subgoal(plan[i]):
            later = [plan[i], *later]
        out[i] = later
    return out


def reasoning_text(subgoals: Sequence[str], depth: int) -> str | None:
    """`next: A; then: B` for the first `depth` subgoals (None when depth is 0 or there is none)."""
    if depth <= 0 or not subgoals:
        return None
    first, *rest = subgoals[:depth]
    return "; ".join([f"next: {first}", *(f"then: {g}" for g in rest)])


def episode_reasonings(episode: dict, depth: int = 1) -> list[str | None]:
    """The expert reasoning at every step of a trajectory episode (see the module docstring)."""
    steps = episode["steps"]
    if depth <= 0:
        return [None] * len(steps)
    replanned: dict[int, list[str]] = {}
    out: list[str | None] = []
    for t in range(len(steps)):
        found: list[str] = []
        for j in range(t, len(steps)):
            st = steps[j]
            if st["action"] != st["expert_action"]:   # noise: the rest of the plan is not in the file
                if j not in replanned:
                    replanned[j] = _replanned_subgoals(episode, j)
                found += replanned[j]
                break
            if is_subgoal(st["expert_action"]):
                found.append(st["expert_action"])
                if len(found) >= depth:
                    break
        out.append(reasoning_text(found, depth))
    return out


def _replanned_subgoals(episode: dict, t: int) -> list[str]:
    """Replay the episode's executed actions up to step t and ask the planner for the subgoals from there."""
    from taskplan.expert.planner import plan_state
    from taskplan.kitchen.env import KitchenEnv

    env = KitchenEnv.from_spec(episode["task"], seed=episode["seed"])
    env.reset()
    for st in episode["steps"][:t]:
        env.step(st["action"])
    plan = plan_state(env.world, env.state, env.goal, max_seconds=60.0).texts
    return [a for a in plan if is_subgoal(a)]
