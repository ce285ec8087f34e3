"""The noisy expert: with probability eps a random valid non-optimal action, then optimal again.

    steps = noisy_rollout(KitchenEnv(instance), eps=0.1, rng=random.Random(7))

Each step records the observation, the valid actions, the expert (optimal)
action of that state, the action actually executed and whether it was noise.
After a noise step the expert re-plans from the new state, so the label of every
state is always the optimal action from that state (a DART-style recovery set).
"""

from __future__ import annotations

import random

from taskplan.errors import PlanningError
from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv

NOISE_CAP = 2   # no more noise after 2 x the optimal length: every episode still terminates


def noisy_rollout(env: KitchenEnv, eps: float, rng: random.Random,
                  max_seconds: float | None = None) -> tuple[int, list[dict]]:
    """Run one episode from env.reset(); returns (optimal steps from the start, step records)."""
    env.reset()
    plan = list(plan_state(env.world, env.state, env.goal, max_seconds=max_seconds).texts)
    optimal = len(plan)
    steps: list[dict] = []
    while not env.done:
        if not plan:
            raise PlanningError(f"{env.task.name}: the expert plan ended before the goal; planner bug")
        texts = env.action_texts()
        expert = plan[0]
        action, noise = expert, False
        if eps > 0 and len(steps) < NOISE_CAP * optimal and rng.random() < eps:
            others = [t for t in texts if t != expert]
            if others:
                action, noise = rng.choice(others), True
        steps.append({"step": len(steps), "observation": env.observation(), "valid_actions": texts,
                      "expert_action": expert, "action": action, "is_noise": noise})
        if not env.step(action).valid:
            raise PlanningError(f"{env.task.name}: action {action!r} is not valid at step {len(steps) - 1}")
        if noise:
            plan = [] if env.done else list(plan_state(env.world, env.state, env.goal, max_seconds=max_seconds).texts)
        else:
            plan.pop(0)
    return optimal, steps
