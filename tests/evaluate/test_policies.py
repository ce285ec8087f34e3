"""Policies: random, expert, causal LM (tiny, offline) and an OpenAI-compatible chat endpoint."""

from __future__ import annotations

import math

import pytest

from taskplan.data.prompts import answer_text, build_messages
from taskplan.errors import ConfigError, ModelNotFoundError
from taskplan.evaluate.policies import (
    ChatEndpointPolicy,
    ExpertPolicy,
    HFPolicy,
    PolicyOptions,
    RandomPolicy,
    Scorer,
    Turn,
    chat_completions_url,
    check_policy_specs,
    make_policy,
    parse_policy_spec,
    policy_kind,
)
from taskplan.evaluate.rollout import EpisodeSpec, run_episodes
from taskplan.kitchen import KitchenEnv


def turn_of(task="burger", seed=42) -> Turn:
    env = KitchenEnv.from_spec(task, seed=seed)
    env.reset()
    return Turn(f"{task}/{seed}", build_messages(env.observation()), tuple(env.action_texts()), env)


def test_random_policy_answers_a_valid_action_reproducibly():
    turn = turn_of()
    replies = RandomPolicy(3).act([turn] * 5)
    assert all(r.removeprefix("Action: ") in turn.valid_actions for r in replies)
    assert RandomPolicy(3).act([turn] * 5) == replies, "same seed, same stream"


def test_expert_policy_answers_the_first_plan_action_and_follows_its_plan():
    from taskplan.expert.planner import plan_state

    turn = turn_of("cheeseburger", 84)
    env = turn.env
    plan = plan_state(env.world, env.state, env.goal).texts
    policy = ExpertPolicy()
    assert policy.act([turn]) == [answer_text(plan[0])]
    env.step(plan[0])
    assert policy.act([Turn(turn.key, turn.messages, tuple(env.action_texts()), env)]) == [answer_text(plan[1])]


def test_expert_policy_replans_after_a_detour():
    [ep] = run_episodes(_DetourThenExpert(), [EpisodeSpec("burger", 42)])
    assert ep.success, "the expert recovers from an off-plan state"


class _DetourThenExpert:
    name = "detour"

    def __init__(self):
        self.expert, self.n = ExpertPolicy(), 0

    def act(self, turns):
        self.n += 1
        if self.n == 1:   # one useless move first
            return [answer_text(next(a for a in t.valid_actions if a.startswith("Move"))) for t in turns]
        return self.expert.act(turns)


def test_policy_specs():
    assert parse_policy_spec("random") == ("random", "random")
    assert parse_policy_spec("sft=models/sft") == ("sft", "models/sft")
    assert policy_kind("http://localhost:8000/v1") == "endpoint"
    assert policy_kind("Qwen/Qwen2.5-1.5B-Instruct") == "model"
    with pytest.raises(ConfigError, match="needs a target"):
        parse_policy_spec("sft")
    with pytest.raises(ConfigError, match="name must be"):
        parse_policy_spec("=models/sft")
    assert isinstance(make_policy("oracle=expert"), ExpertPolicy)
    assert make_policy("oracle=expert").name == "oracle"


def test_chat_completions_url():
    assert chat_completions_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"


def test_endpoint_policy_plays_against_a_local_server(chat_server, monkeypatch):
    url, requests = chat_server
    monkeypatch.setenv("TEST_EVAL_KEY", "sekrit")
    policy = make_policy(f"local={url}/v1", PolicyOptions(endpoint_model="tiny-chat", api_key_env="TEST_EVAL_KEY",
                                                          max_new_tokens=20))
    assert isinstance(policy, ChatEndpointPolicy)
    episodes = run_episodes(policy, [EpisodeSpec("burger", 42), EpisodeSpec("burger", 84)])
    policy.close()
    assert all(e.invalid == 0 and e.steps == e.cap for e in episodes), "every reply was a valid action"
    headers, body = requests[0]
    assert body["model"] == "tiny-chat" and body["max_tokens"] == 20 and body["temperature"] == 0.0
    assert body["messages"][0]["role"] == "system" and "Valid Actions:" in body["messages"][-1]["content"]
    assert headers.get("Authorization") == "Bearer sekrit"
    assert len(requests) == sum(e.replies for e in episodes)


def test_endpoint_errors_are_one_line(chat_server):
    url, _ = chat_server
    bad_path = ChatEndpointPolicy(url + "/v1/nope/chat/completions", retries=0)
    with pytest.raises(ModelNotFoundError, match="HTTP 404"):
        bad_path.act([turn_of()])
    unreachable = ChatEndpointPolicy("http://127.0.0.1:9", retries=0, timeout=2.0)
    with pytest.raises(ModelNotFoundError, match="unreachable"):
        unreachable.act([turn_of()])


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and then says nothing (mode "silent"), trickles its body ("body")
    or its headers ("headers") a byte at a time, or sends a body larger than any answer ("huge")."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    conns, stop = [], threading.Event()
    mode = {"trickle": "silent"}

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            if mode["trickle"] != "silent":
                threading.Thread(target=trickle, args=(conn, mode["trickle"]), daemon=True).start()

    def trickle(conn, kind):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n"
        try:
            if kind == "headers":
                for byte in head:
                    if stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))
            conn.sendall(head)
            if kind == "huge":
                conn.sendall(b"x" * 3000000)
            while not stop.wait(0.2):
                conn.sendall(b" ")
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", mode
    finally:
        stop.set()
        thread.join()
        for conn in conns:
            conn.close()
        listener.close()


@pytest.mark.parametrize("trickle", ["silent", "body", "headers"])
def test_endpoint_that_never_answers_fails_at_the_total_deadline(silent_server, trickle):
    import time

    url, mode = silent_server
    mode["trickle"] = trickle
    policy = make_policy(f"mute={url}/v1", PolicyOptions(endpoint_timeout=1.0))
    t0 = time.monotonic()
    with pytest.raises(ModelNotFoundError, match=r"did not answer within 1 s; .*evaluate.endpoint_timeout") as err:
        policy.act([turn_of(), turn_of("burger", 84)])
    elapsed = time.monotonic() - t0
    policy.close()
    assert "\n" not in str(err.value)
    assert elapsed < 2.5, f"{elapsed:.1f} s: the deadline covers every try (3 tries x 1 s before)"


def test_an_endpoint_answer_over_the_size_cap_is_refused_as_it_streams(silent_server):
    url, mode = silent_server
    mode["trickle"] = "huge"
    policy = make_policy(f"big={url}/v1", PolicyOptions(endpoint_timeout=20.0))
    with pytest.raises(ModelNotFoundError, match=r"answered more than 1 MiB for one turn") as err:
        policy.act([turn_of()])
    policy.close()
    assert "\n" not in str(err.value)


def test_transcripts_keep_a_huge_reply_cut_with_a_marker():
    from taskplan.evaluate.rollout import MAX_TRANSCRIPT_REPLY, transcript_reply

    reply = "Reasoning: " + "x" * 20_000_000 + "\nAction: Do nothing"
    kept = transcript_reply(reply)
    assert len(kept) < MAX_TRANSCRIPT_REPLY + 100 and kept.endswith("Action: Do nothing")
    assert "characters cut" in kept and transcript_reply("Action: Do nothing") == "Action: Do nothing"


def test_endpoint_deadline_must_be_positive():
    with pytest.raises(ConfigError, match="endpoint_timeout"):
        ChatEndpointPolicy("http://127.0.0.1:9", timeout=0)


def _corrupt(src, dst, how):
    import shutil

    shutil.copytree(src, dst)
    if how == "empty":
        shutil.rmtree(dst)
        dst.mkdir()
    elif how == "config":
        (dst / "config.json").write_text("{not json")
    elif how == "truncated":
        data = (dst / "model.safetensors").read_bytes()
        (dst / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "no_weights":
        (dst / "model.safetensors").unlink()
    elif how == "no_template":
        (dst / "chat_template.jinja").unlink()
    elif how == "fifo_weights":
        import os

        (dst / "model.safetensors").unlink()
        os.mkfifo(dst / "model.safetensors")
    elif how == "dunder_template":
        (dst / "chat_template.jinja").write_text("{{ messages.__class__.__mro__ }}")
    elif how == "slow_template":
        (dst / "chat_template.jinja").write_text(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
    return dst


@pytest.mark.parametrize("how, message", [
    ("empty", "no config.json"), ("config", "config.json that does not load"), ("truncated", "unreadable weights model.safetensors"),
    ("no_weights", "no \\*.safetensors"), ("no_template", "without a chat template"),
    ("fifo_weights", "holds 'model.safetensors', which is not a regular file"),
    ("dunder_template", "chat template that fails to render"),
    ("slow_template", "chat template that takes more than"),
])
def test_check_policy_specs_finds_a_corrupt_model_folder(tiny_model_dir, tmp_path, how, message):
    bad = _corrupt(tiny_model_dir, tmp_path / "sft", how)
    with pytest.raises(ModelNotFoundError, match=message) as err:
        check_policy_specs(["random", f"sft={bad}"])
    assert "\n" not in str(err.value) and "'sft'" in str(err.value)


def test_check_policy_specs_accepts_what_loads(tiny_model_dir):
    check_policy_specs(["random", "expert", f"tiny={tiny_model_dir}", "qwen=Qwen/Qwen2.5-1.5B-Instruct",
                        "local=http://localhost:8000/v1"])


@pytest.mark.parametrize("spec, error, message", [
    ("api=http://", ConfigError, "names no host"),
    ("api=http://localhost:port/v1", ConfigError, "malformed"),
    ("sft=models/nope", ModelNotFoundError, "does not exist"),
    ("sft", ConfigError, "needs a target"),
])
def test_check_policy_specs_rejects_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        check_policy_specs(["random", spec])


def test_model_policy_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError):
        make_policy(f"sft={tmp_path / 'nope'}")


@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir):
    return HFPolicy.from_pretrained(str(tiny_model_dir), name="tiny",
                                    options=PolicyOptions(max_new_tokens=6, batch_size=4, device="cpu"))


def test_model_policy_generates_one_reply_per_turn(tiny_policy):
    turns = [turn_of("burger", 42), turn_of("cheeseburger", 84), turn_of("burger", 84)]
    replies = tiny_policy.act(turns)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert tiny_policy.act(turns) == replies, "greedy decoding is deterministic"


def test_model_policy_scores_completions_like_a_plain_forward(tiny_policy):
    import torch

    assert isinstance(tiny_policy, Scorer)
    base = turn_of("burger", 42)
    nudged = Turn(base.key, build_messages(base.env.observation(), prev_action="Do nothing"), base.valid_actions)
    turns = [base, nudged, turn_of("double_cheeseburger", 84)]
    completions = [answer_text(t.valid_actions[0]) for t in turns]
    padded = HFPolicy(tiny_policy.model, tiny_policy.tokenizer,
                      options=PolicyOptions(batch_size=4, pad_tolerance=1.0))   # force one padded batch
    batched = padded.completion_logprobs([t.messages for t in turns], completions)
    assert tiny_policy.completion_logprobs([t.messages for t in turns], completions) == pytest.approx(batched,
                                                                                                    abs=1e-3)
    # reference: one unpadded forward per example
    tok, model = tiny_policy.tokenizer, tiny_policy.model
    for t, c, got in zip(turns, completions, batched):
        p = tok(tiny_policy.prompt_text(t.messages), add_special_tokens=False)["input_ids"]
        comp = tok(c, add_special_tokens=False)["input_ids"] + [tiny_policy.stop_id]
        ids = torch.tensor([p + comp])
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        want = sum(float(logp[len(p) - 1 + i, tok_id]) for i, tok_id in enumerate(comp))
        assert got == pytest.approx(want, abs=1e-3), "left padding must not change the score"
        assert got < 0 and math.isfinite(got)


def test_constrained_scores_equal_teacher_forcing_and_pick_the_most_likely_valid_action(tiny_policy):
    from taskplan.evaluate.policies import ConstrainedPolicy

    turn = turn_of("burger", 42)
    actions = list(turn.valid_actions)
    cached = tiny_policy.action_logprobs(turn.messages, actions)
    forced = tiny_policy.completion_logprobs([turn.messages] * len(actions), [answer_text(a) for a in actions])
    assert cached == pytest.approx(forced, abs=1e-3), "one prompt pass + cached candidates = full teacher forcing"
    constrained = ConstrainedPolicy(tiny_policy)
    reply = constrained.act([turn])[0]
    best = actions[max(range(len(cached)), key=cached.__getitem__)]
    assert reply.endswith(answer_text(best)) and constrained.name == "tiny_constrained"
    # the untrained tiny model rarely writes a valid action; the constrained mode always does
    turns = [turn_of("burger", 42), turn_of("cheeseburger", 84)]
    assert all(r.split("Action: ")[-1] in t.valid_actions for r, t in zip(constrained.act(turns), turns))
