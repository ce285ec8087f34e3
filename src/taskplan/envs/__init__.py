"""Gymnasium environments: `taskplan/Kitchen-v0` (kitchen_gym.py).

    import gymnasium
    import taskplan.envs    # registers taskplan/Kitchen-v0 (idempotent)
    env = gymnasium.make("taskplan/Kitchen-v0", task="burger", seed=42)
    # or, without the import: gymnasium.make("taskplan.envs:taskplan/Kitchen-v0", task="burger", seed=42)

pyproject.toml also lists `register_envs` under the `gymnasium.envs` entry-point
group, the plugin hook older Gymnasium releases (0.26-0.29) load on import;
Gymnasium 1.x no longer reads that group, hence the import above.
"""

from __future__ import annotations

from taskplan.envs.kitchen_gym import CHARSET, MAX_ACTION_CHARS, MAX_OBSERVATION_CHARS, KitchenGymEnv

ENV_ID = "taskplan/Kitchen-v0"

__all__ = ["CHARSET", "ENV_ID", "MAX_ACTION_CHARS", "MAX_OBSERVATION_CHARS", "KitchenGymEnv", "register_envs"]


def register_envs() -> None:
    """Register taskplan/Kitchen-v0 with Gymnasium (safe to call twice)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        # No max_episode_steps: the env truncates itself at the task's step cap, counting only
        # executed actions (a TimeLimit wrapper would also count the free invalid ones).
        gymnasium.register(id=ENV_ID, entry_point="taskplan.envs.kitchen_gym:KitchenGymEnv")


register_envs()
