"""taskplan/Kitchen-v0: Gymnasium's checker, the agent protocol (free invalid text), reward, caps, vector use."""

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import taskplan.envs  # noqa: F401  (registers taskplan/Kitchen-v0)
from taskplan.envs import ENV_ID, KitchenGymEnv
from taskplan.expert.planner import plan_instance
from taskplan.kitchen.layout import default_instance, seeded_instance


def _make(**kw):
    return gymnasium.make(ENV_ID, **kw)


def test_passes_gymnasium_env_checker():
    check_env(_make(task="cheeseburger", seed=42, expert=True).unwrapped)   # unwrapped, as the checker asks
    check_env(_make(task="potato_soup", layout="default", render_mode="ansi").unwrapped)


def test_make_by_seed_layout_or_instance_file(tmp_path):
    import json

    path = tmp_path / "kitchen.json"
    path.write_text(json.dumps(seeded_instance("burger", 42)))
    a, _ = _make(task="burger", seed=42).reset()
    b, _ = _make(instance=str(path)).reset()
    c, _ = _make(task="burger", layout="default").reset()
    assert a == b and a != c
    assert "Goal: Prepare a hamburger on a table" in a


def test_observation_and_info_describe_the_state():
    env = _make(task="burger", seed=42)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["steps"] == 0 and info["goal"] is False and "expert_action" not in info
    assert info["valid_actions"][-1] == "Do nothing"
    assert "\n".join(info["valid_actions"]) in obs


def test_invalid_text_is_not_executed_and_costs_no_step():
    env = _make(task="burger", seed=42)
    obs, _ = env.reset()
    obs2, reward, terminated, truncated, info = env.step("Fly to the moon")
    assert obs2 == obs and reward == 0.0 and not terminated and not truncated
    assert info["valid"] is False and info["steps"] == 0 and "not valid" in info["error"]
    _, _, _, _, info = env.step("  Do nothing  ")   # surrounding whitespace is trimmed (docs/kitchen.md 9)
    assert info["valid"] is True and info["steps"] == 1


def test_expert_reaches_the_goal_in_the_optimal_steps_with_reward_one_exactly_at_success():
    env = _make(task="cheeseburger", seed=84, expert=True)
    optimal = plan_instance(seeded_instance("cheeseburger", 84)).optimal_steps
    _, info = env.reset()
    rewards = []
    terminated = truncated = False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
        rewards.append(reward)
    assert terminated and not truncated and info["goal"]
    assert rewards == [0.0] * (optimal - 1) + [1.0]
    assert info["steps"] == optimal and info["expert_action"] is None
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step("Do nothing")


def test_expert_replans_after_a_detour():
    env = KitchenGymEnv(task="burger", seed=42, expert=True)
    _, info = env.reset()
    first = info["expert_action"]
    detour = next(a for a in info["valid_actions"] if a != first and a.startswith("Move"))
    _, _, _, _, info = env.step(detour)
    k = env.kitchen
    from taskplan.expert.planner import plan_state
    assert info["expert_action"] == plan_state(k.world, k.state, k.goal).texts[0]


def test_truncated_at_the_cap_and_default_cap_is_the_tasks():
    env = _make(task="burger", seed=42)
    assert env.unwrapped.max_steps == 15            # ceil(1.5 x listed 10)
    env = _make(task="burger", seed=42, max_steps=3)
    env.reset()
    outs = [env.step("Do nothing") for _ in range(3)]
    assert [o[3] for o in outs] == [False, False, True]
    assert not any(o[2] for o in outs) and all(o[1] == 0.0 for o in outs)


def test_invalid_limit_truncates_when_set():
    env = _make(task="burger", seed=42, invalid_limit=2)
    env.reset()
    assert env.step("nope")[3] is False
    assert env.step("nope")[3] is True


def test_legacy_skip_is_passed_to_the_kitchen():
    assert _make(task="potato_soup", seed=42, legacy_skip=True).unwrapped.kitchen.world.legacy_skip


def test_sync_vector_env_steps_several_kitchens_to_success():
    specs = [{"task": "burger", "seed": 42}, {"task": "cheese_sandwich", "layout": "default"},
             {"task": "cheeseburger", "seed": 126}]
    envs = gymnasium.vector.SyncVectorEnv([lambda kw=kw: KitchenGymEnv(expert=True, **kw) for kw in specs])
    obs, infos = envs.reset(seed=0)
    assert len(obs) == 3 and all(isinstance(o, str) for o in obs)
    finished = [False] * 3
    total = [0.0] * 3
    for _ in range(30):
        actions = tuple(a if a is not None else "Do nothing" for a in infos["expert_action"])
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        for n in range(3):
            if not finished[n]:
                total[n] += float(rewards[n])
                finished[n] = bool(terminated[n])
        if all(finished):
            break
    envs.close()
    assert all(finished) and total == [1.0, 1.0, 1.0]


def test_default_layout_episode_ends_in_listed_optimum_on_s0():
    env = _make(task="cheese_sandwich", layout="default", expert=True)
    _, info = env.reset()
    steps = 0
    done = False
    while not done:
        _, _, term, trunc, info = env.step(info["expert_action"])
        steps += 1
        done = term or trunc
    assert not trunc
    assert term and steps == plan_instance(default_instance("cheese_sandwich")).optimal_steps
