"""The expert's reasoning: the subgoal an expert step serves, written before its action.

    subgoal_steps(plan)                          # per step: the first later action that is not a move or a wait
    reasoning_text("Pick up patty1 from stove3 using robot1")   # "next: Pick up patty1 from stove3 using robot1"
    episode_reasonings(episode)                  # one reasoning per step of a trajectory episode

The agent protocol asks for a `Reasoning:` part before the `Action:` line
(spec KITCHEN.md 9). With reasoning on, an expert reply is

    Reasoning: next: Pick up patty1 from stove3 using robot1
    Action: Move robot1 from table1 to stove3

where the reasoning names the first action of the expert's minimal plan, from
this state on, that is neither a move nor a wait: the step the current action
prepares. It is a pure function of the state (the plan is the unique
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


def subgoal_steps(plan: Sequence[str]) -> list[str | None]:
    """For each step of a plan that reaches the goal, the first action at or after it that is a subgoal
    (None only where the plan ends with moves or waits, which a minimal plan never does)."""
    out: list[str | None] = [None] * len(plan)
    nxt: str | None = None
    for i in range(len(plan) - 1, -1, -1):
        if is_subgoal(plan[i]):
            nxt = plan[i]
        out[i] = nxt
    return out


def reasoning_text(subgoal: str | None) -> str | None:
    return None if subgoal is None else f"next: {subgoal}"


def episode_reasonings(episode: dict) -> list[str | None]:
    """The expert reasoning at every step of a trajectory episode (see the module docstring)."""
    steps = episode["steps"]
    replanned: dict[int, str | None] = {}
    out: list[str | None] = []
    for t in range(len(steps)):
        found: str | None = None
        for j in range(t, len(steps)):
            st = steps[j]
            if is_subgoal(st["expert_action"]):
                found = st["expert_action"]
                break
            if st["action"] != st["expert_action"]:   # noise: the rest of the plan is not in the file
                if j not in replanned:
                    replanned[j] = _replanned_subgoal(episode, j)
                found = replanned[j]
                break
        out.append(reasoning_text(found))
    return out


def _replanned_subgoal(episode: dict, t: int) -> str | None:
    """Replay the episode's executed actions up to step t and ask the planner for the subgoal from there."""
    from taskplan.expert.planner import plan_state
    from taskplan.kitchen.env import KitchenEnv

    env = KitchenEnv.from_spec(episode["task"], seed=episode["seed"])
    env.reset()
    for st in episode["steps"][:t]:
        env.step(st["action"])
    plan = plan_state(env.world, env.state, env.goal, max_seconds=60.0).texts
    return next((a for a in plan if is_subgoal(a)), None)
