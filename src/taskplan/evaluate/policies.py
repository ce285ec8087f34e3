"""Policies: what answers one turn of a multi-turn episode.

    policy = make_policy("sft=models/sft", PolicyOptions(max_new_tokens=32))
    replies = policy.act(turns)              # one reply text per turn, same order

Every policy is a `Policy`: a `name` and `act(turns) -> list[str]`, called once
per step with the turns of every active episode (a batch). A `Turn` carries the
chat prompt and the valid actions; planner-based policies may also read the
live environment (`turn.env`). Policies that can score text also implement
`Scorer.completion_logprobs`, which the product bound needs.

Four kinds, chosen by a spec string `name[=target]` (see `make_policy`):
- `random`: a uniformly drawn valid action; one seeded stream per episode, so
  the replies do not depend on how episodes are batched.
- `expert`: the first action of the planner's minimal plan from the current
  state; the plan is cached per episode while the agent stays on it.
- `NAME=PATH_OR_HUB_ID`: a causal LM (transformers), batched generation with
  left padding, greedy when temperature is 0, sampled otherwise.
- `NAME=http(s)://HOST[:PORT][/v1]`: any OpenAI-compatible chat endpoint
  (POST /v1/chat/completions), turns sent concurrently; each turn has one
  total deadline (`endpoint_timeout`, retries included).

Evaluation modes of a model policy: `free` (the paper's protocol: generated
text, parsed by the environment's parser) and `constrained`
(`ConstrainedPolicy`: the valid action whose reply `Action: <a>` the model
itself finds most likely; one forward of the prompt, then one batched forward
of all candidates on its cached keys and values). Constrained replies are
always valid, so the mode separates "knows what to do" from "can write it".
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from taskplan.data.prompts import answer_text
from taskplan.errors import ConfigError, ModelNotFoundError
from taskplan.expert.planner import plan_state
from taskplan.kitchen.state import step, valid_actions
from taskplan.model.factory import load_policy, load_tokenizer, model_folder_problem

log = logging.getLogger(__name__)

BUILTIN = ("random", "expert")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Turn:
    key: str                              # episode id ("task/seed"), stable however episodes are batched
    messages: list[dict[str, str]]        # the chat prompt of this turn
    valid_actions: tuple[str, ...]
    env: Any = None                       # the live KitchenEnv, for planner-based policies only


class Policy(Protocol):
    name: str

    def act(self, turns: Sequence[Turn]) -> list[str]:
        """One reply text per turn, in order."""
        ...


@runtime_checkable
class Scorer(Protocol):
    def completion_logprobs(self, prompts: Sequence[list[dict[str, str]]],
                            completions: Sequence[str]) -> list[float]:
        """Teacher-forced log-probability of each exact completion (ended by the stop token)."""
        ...


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    """Knobs shared by the policy kinds (each kind reads the ones it needs)."""

    seed: int = 42                  # random policy streams; sampling seed of model policies
    max_new_tokens: int = 48        # reply budget of model and endpoint policies (reasoning line + action)
    temperature: float = 0.0        # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 40            # generation/scoring batch of a model policy
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    dtype: str = "auto"             # auto | float32 | bfloat16 | float16
    endpoint_model: str = ""        # "model" field sent to a chat endpoint ("" = the policy name)
    endpoint_concurrency: int = 8   # requests in flight per batch
    endpoint_timeout: float = 30.0  # seconds an endpoint may take per turn, all tries together
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the endpoint's key, if any
    planner_seconds: float = 300.0  # expert: give up planning after this long
    pad_tolerance: float | None = None  # a batch's longest prompt <= (1 + this) x its shortest; None: auto
    #                                     (CPU 0: prefill is compute-bound, padding is waste; GPU: no limit)


def parse_policy_spec(spec: str) -> tuple[str, str]:
    """`name[=target]` -> (name, target); `random`/`expert` need no target."""
    name, sep, target = spec.partition("=")
    name, target = name.strip(), target.strip()
    if not sep:
        target = name
    if not _NAME.match(name or "-"):
        raise ConfigError(f"policy {spec!r}: the name must be letters, digits, '_', '-' or '.'; "
                          "e.g. sft=models/sft")
    if not target:
        raise ConfigError(f"policy {spec!r} has an empty target; e.g. {name}=models/{name}")
    if not sep and name not in BUILTIN:
        raise ConfigError(f"policy {spec!r} needs a target: {name}=MODEL_DIR, {name}=HUB_ID or "
                          f"{name}=http://HOST:PORT/v1 (built-ins: {', '.join(BUILTIN)})")
    return name, target


def check_policy_specs(specs: Sequence[str]) -> None:
    """Fail before anything is written or run: every spec parses, every endpoint URL is well formed, and
    every local model folder holds a loadable config, a tokenizer with a chat template and complete
    safetensors weights (headers only; tensors are read when the policy loads). Hub ids are checked when
    they load."""
    for spec in specs:
        name, target = parse_policy_spec(spec)
        kind = policy_kind(target)
        if kind == "endpoint":
            _check_endpoint_url(name, target)
        elif kind == "model":
            _check_model_folder(name, target)


def policy_kind(target: str) -> str:
    if target in BUILTIN:
        return target
    return "endpoint" if target.startswith(("http://", "https://")) else "model"


def make_policy(spec: str, options: PolicyOptions = PolicyOptions()) -> Policy:
    """Build the policy a spec string names (see the module docstring)."""
    name, target = parse_policy_spec(spec)
    kind = policy_kind(target)
    if kind == "random":
        return RandomPolicy(options.seed, name=name)
    if kind == "expert":
        return ExpertPolicy(options.planner_seconds, name=name)
    if kind == "endpoint":
        key = os.environ.get(options.api_key_env) if options.api_key_env else None
        return ChatEndpointPolicy(target, model=options.endpoint_model or name, name=name,
                                  temperature=options.temperature, max_tokens=options.max_new_tokens,
                                  timeout=options.endpoint_timeout, concurrency=options.endpoint_concurrency,
                                  api_key=key)
    return HFPolicy.from_pretrained(target, name=name, options=options)


class RandomPolicy:
    """A uniformly random valid action, from one seeded stream per episode."""

    def __init__(self, seed: int = 42, name: str = "random"):
        self.name, self.seed = name, seed
        self._rngs: dict[str, random.Random] = {}

    def act(self, turns: Sequence[Turn]) -> list[str]:
        out = []
        for turn in turns:
            rng = self._rngs.setdefault(turn.key, random.Random(f"{self.seed}/{turn.key}"))
            out.append(answer_text(rng.choice(turn.valid_actions)) if turn.valid_actions else "Action: Finish")
        return out


class ExpertPolicy:
    """The planner's next action from the current state (plans cached per episode)."""

    def __init__(self, max_seconds: float | None = 300.0, name: str = "expert"):
        self.name, self.max_seconds = name, max_seconds
        self._next: dict[str, dict[Any, str]] = {}   # episode -> {state on the cached plan: its action}

    def act(self, turns: Sequence[Turn]) -> list[str]:
        return [answer_text(self._action(turn)) for turn in turns]

    def _action(self, turn: Turn) -> str:
        env = turn.env
        if env is None:
            raise ConfigError("the expert policy needs the live environment in each turn (Turn.env)")
        cached = self._next.setdefault(turn.key, {})
        if env.state not in cached:
            cached.update(plan_actions_by_state(env.world, env.state, env.goal, self.max_seconds))
        return cached.get(env.state, "Finish")   # "Finish" only when the goal already holds


def plan_actions_by_state(world: Any, state: Any, goal: Any, max_seconds: float | None) -> dict[Any, str]:
    """Map every state on the minimal plan from `state` to the plan's action there."""
    plan = plan_state(world, state, goal, max_seconds=max_seconds)
    out, s = {}, state
    for text in plan.texts:
        out[s] = text
        act = next(a for a in valid_actions(world, s) if world.action_text(a) == text)
        s = step(world, s, act)
    return out


class HFPolicy:
    """A causal LM from transformers: batched left-padded generation, teacher-forced scoring."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "model", options: PolicyOptions = PolicyOptions()):
        import torch

        self.name, self.model, self.tokenizer, self.options = name, model, tokenizer, options
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = next(model.parameters()).device
        self.model.eval()
        eos = model.generation_config.eos_token_id
        eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        self.stop_id: int | None = eos if eos is not None else tokenizer.eos_token_id
        self._generator = torch.Generator(device="cpu").manual_seed(options.seed)
        self._gen_config = self._generation_config()
        # CPU prefill is compute-bound, so padding is pure waste and a batch's decode steps wait for its
        # longest reply: only equal-length prompts share a batch there. A GPU is memory-bound while
        # decoding, so one big batch is much faster.
        tolerance = options.pad_tolerance
        self._pad_tolerance = tolerance if tolerance is not None else (
            0.0 if self.device.type == "cpu" else float("inf"))

    @classmethod
    def from_pretrained(cls, name_or_path: str, name: str = "model",
                        options: PolicyOptions = PolicyOptions()) -> HFPolicy:
        import torch

        tokenizer = load_tokenizer(name_or_path)
        model = load_policy(name_or_path, dtype=options.dtype)
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            model.to(device)
        except (RuntimeError, AssertionError) as err:
            raise ConfigError(f"cannot place model {name_or_path} on device {device!r} ({str(err).splitlines()[0]});"
                              " use evaluate.device=cpu or auto") from None
        if getattr(tokenizer, "chat_template", None) is None:
            raise ModelNotFoundError(f"model {name_or_path} has a tokenizer without a chat template; "
                                     "use an instruct/chat model or one written by `taskplan model-init`")
        return cls(model, tokenizer, name=name, options=options)

    def act(self, turns: Sequence[Turn]) -> list[str]:
        return self.generate([self.prompt_text(t.messages) for t in turns])

    def sampler(self, seed: int, temperature: float = 1.0) -> HFPolicy:
        """The same weights sampled at `temperature` (the policy the product bound is about)."""
        import dataclasses

        options = dataclasses.replace(self.options, temperature=temperature, top_p=1.0, seed=seed)
        return HFPolicy(self.model, self.tokenizer, name=self.name, options=options)

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Replies to rendered prompts, in batches of similar length (less padding)."""
        import torch

        out = [""] * len(prompts)
        lengths = [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        for chunk in _length_buckets(order, lengths, self.options.batch_size, self._pad_tolerance):
            enc = self.tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                if self._gen_config.do_sample:
                    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator)))
                ids = self.model.generate(**enc, generation_config=self._gen_config)
            texts = self.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                out[i] = text.strip()
        return out

    def completion_logprobs(self, prompts: Sequence[list[dict[str, str]]],
                            completions: Sequence[str]) -> list[float]:
        """log p(completion + stop token | prompt), teacher-forced, batched with left padding."""
        import torch

        tok = self.tokenizer
        seqs = []
        for messages, completion in zip(prompts, completions, strict=True):
            p = tok(self.prompt_text(messages), add_special_tokens=False)["input_ids"]
            c = tok(completion, add_special_tokens=False)["input_ids"]
            seqs.append((p, c + ([self.stop_id] if self.stop_id is not None else [])))
        out = [0.0] * len(seqs)
        lengths = [len(p) + len(c) for p, c in seqs]
        order = sorted(range(len(seqs)), key=lambda i: lengths[i])
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        for chunk in _length_buckets(order, lengths, self.options.batch_size, self._pad_tolerance):
            width = max(len(seqs[i][0]) + len(seqs[i][1]) for i in chunk)
            keep = max(len(seqs[i][1]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                full = seqs[i][0] + seqs[i][1]
                ids[row, width - len(full):] = torch.tensor(full)
                mask[row, width - len(full):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                    position_ids=positions.to(self.device), logits_to_keep=keep + 1).logits
            logp = torch.log_softmax(logits[:, -(keep + 1):].float(), dim=-1).cpu()
            for row, i in enumerate(chunk):
                n = len(seqs[i][1])
                target = torch.tensor(seqs[i][1])
                # kept position j predicts the token at j + 1; the completion fills the last n positions
                out[i] = float(logp[row, keep - n:keep].gather(-1, target[:, None]).sum())
        return out

    def action_logprobs(self, messages: list[dict[str, str]], actions: Sequence[str], prefix: str = "") -> list[float]:
        """log p(`Action: <a>` + stop token | prompt + prefix) for every candidate action: the prompt (and the
        reply's own reasoning, `prefix`) is run once, and its key/value cache is shared by one batched forward
        over the candidates."""
        import torch

        tok = self.tokenizer
        prompt = tok(self.prompt_text(messages) + prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
        stop = [self.stop_id] if self.stop_id is not None else []
        cands = [tok(answer_text(a), add_special_tokens=False)["input_ids"] + stop for a in actions]
        n, width = len(cands), max(len(c) for c in cands)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, c in enumerate(cands):
            ids[i, :len(c)], mask[i, :len(c)] = torch.tensor(c), 1
        p_len = prompt.shape[1]
        with torch.inference_mode():
            out = self.model(input_ids=prompt.to(self.device), use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()
            cache = out.past_key_values
            cache.batch_repeat_interleave(n)
            attention = torch.cat([torch.ones((n, p_len), dtype=torch.long), mask], dim=1)
            positions = (p_len + torch.arange(width)).expand(n, width)
            rest = self.model(input_ids=ids.to(self.device), attention_mask=attention.to(self.device),
                              position_ids=positions.to(self.device), past_key_values=cache).logits
            logp = torch.log_softmax(rest.float(), dim=-1).cpu()
        scores = []
        for i, c in enumerate(cands):   # token j+1 of a candidate is predicted at its position j
            tail = logp[i, :len(c) - 1].gather(-1, torch.tensor(c[1:])[:, None]).sum() if len(c) > 1 else 0.0
            scores.append(float(first[c[0]] + tail))
        return scores

    def _generation_config(self) -> Any:
        import copy

        gen = copy.deepcopy(self.model.generation_config)
        sample = self.options.temperature > 0
        gen.max_new_tokens = self.options.max_new_tokens
        gen.do_sample = sample
        gen.temperature = self.options.temperature if sample else None
        gen.top_p = self.options.top_p if sample else None
        # the policy's own distribution (what the bound scores): no top-k, no repetition penalty, whatever
        # the model's generation_config suggests (Qwen2.5-Instruct ships top_k=20, repetition_penalty=1.1)
        gen.top_k = None
        gen.repetition_penalty = 1.0
        gen.pad_token_id = self.tokenizer.pad_token_id
        if gen.eos_token_id is None:
            gen.eos_token_id = self.stop_id
        return gen


class ConstrainedPolicy:
    """Constrained decoding: the valid action the model's own likelihood ranks first (ties: list order).

    A model trained to reason first writes its reasoning greedily (the free reply up to its `Action:`
    line); the candidates are then scored after that reasoning, so both modes see the same thought."""

    def __init__(self, model: HFPolicy, name: str | None = None):
        self.inner, self.name = model, name or f"{model.name}_constrained"

    @property
    def model(self) -> Any:   # release_policy frees it through this attribute
        return self.inner.model

    @model.setter
    def model(self, value: Any) -> None:
        self.inner.model = value

    def act(self, turns: Sequence[Turn]) -> list[str]:
        free = self.inner.act(turns)
        out = []
        for turn, reply in zip(turns, free):
            if not turn.valid_actions:
                out.append("Action: Finish")
                continue
            cut = reply.rfind("Action:")
            prefix = reply[:cut] if cut > 0 and reply[:cut].endswith("\n") else ""
            scores = self.inner.action_logprobs(turn.messages, turn.valid_actions, prefix)
            out.append(prefix + answer_text(turn.valid_actions[max(range(len(scores)), key=scores.__getitem__)]))
        return out


MAX_RESPONSE_BYTES = 1 << 20   # an endpoint's answer to one turn; a larger one is refused, never buffered


class ChatEndpointPolicy:
    """Any OpenAI-compatible chat endpoint: one POST /v1/chat/completions per turn, sent concurrently.

    `timeout` is a total deadline per turn: connecting, sending, waiting for the headers, reading the body
    and retrying all count, so a server that accepts connections but never answers, or trickles its
    headers or body byte by byte, fails after `timeout` seconds. An answer over MAX_RESPONSE_BYTES is
    refused as it streams in."""

    def __init__(self, url: str, model: str = "default", name: str = "endpoint", temperature: float = 0.0,
                 max_tokens: int = 64, timeout: float = 30.0, concurrency: int = 8, api_key: str | None = None,
                 retries: int = 2, client: Any = None):
        import httpx

        if not timeout > 0:
            raise ConfigError(f"endpoint timeout {timeout!r}: give a number of seconds > 0 (evaluate.endpoint_timeout)")
        self.name, self.model, self.url = name, model, chat_completions_url(url)
        self.temperature, self.max_tokens, self.retries, self.timeout = temperature, max_tokens, retries, timeout
        self.concurrency = max(1, concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    def act(self, turns: Sequence[Turn]) -> list[str]:
        if len(turns) <= 1 or self.concurrency == 1:
            return [self._ask(t.messages) for t in turns]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(turns)))
        try:
            return list(pool.map(lambda t: self._ask(t.messages), turns))
        finally:   # after a failure, the turns not yet sent are dropped instead of waiting out their deadlines
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._client.close()

    def _ask(self, messages: list[dict[str, str]]) -> str:
        import httpx

        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        deadline = time.monotonic() + self.timeout
        for attempt in range(self.retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                status, data = self._post_within(body, deadline, httpx.Timeout(left))
            except (httpx.TimeoutException, TimeoutError):
                break
            except httpx.HTTPError as err:
                if attempt < self.retries:
                    time.sleep(max(0.0, min(0.5 * 2**attempt, deadline - time.monotonic())))
                    continue
                raise ModelNotFoundError(f"chat endpoint {self.url} unreachable ({type(err).__name__}: "
                                         f"{str(err)[:120]}); start the server or fix the policy URL") from None
            text = data.decode("utf-8", "replace")
            if status >= 500 and attempt < self.retries:
                time.sleep(max(0.0, min(0.5 * 2**attempt, deadline - time.monotonic())))
                continue
            if status != 200:
                raise ModelNotFoundError(f"chat endpoint {self.url} answered HTTP {status} "
                                         f"({text[:160]!r}); check the URL, model name and API key")
            try:
                return json.loads(text)["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError, RecursionError):
                raise ModelNotFoundError(f"chat endpoint {self.url} sent no choices[0].message.content "
                                         f"({text[:160]!r}); is it OpenAI-compatible?") from None
        raise ModelNotFoundError(f"chat endpoint {self.url} did not answer within {self.timeout:g} s; check the "
                                 "server, or allow more time with evaluate.endpoint_timeout")

    def _post_within(self, body: dict[str, Any], deadline: float, timeout: Any) -> tuple[int, bytes]:
        """`_post` under the total deadline: httpx's timeouts bound each read, not their sum, so a server
        trickling its headers could outlast them. The request runs in a daemon thread that is abandoned
        (and ends with httpx's own read timeout) when the deadline passes."""
        import threading

        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = self._post(body, deadline, timeout)
            except BaseException as err:   # handed to the caller's thread
                box["error"] = err

        worker = threading.Thread(target=run, daemon=True, name="taskplan-endpoint")
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise TimeoutError
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _post(self, body: dict[str, Any], deadline: float, timeout: Any) -> tuple[int, bytes]:
        """One POST; the body is read in chunks so that a trickling server cannot outlast the deadline and
        a huge one is refused before it fills memory."""
        with self._client.stream("POST", self.url, json=body, timeout=timeout) as resp:
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise ModelNotFoundError(f"chat endpoint {self.url} answered more than "
                                             f"{MAX_RESPONSE_BYTES >> 20} MiB for one turn; is it a chat endpoint?")
                if time.monotonic() > deadline:
                    raise TimeoutError
            return resp.status_code, b"".join(chunks)


def chat_completions_url(url: str) -> str:
    """Accept a base URL (http://host:8000), its /v1, or the full chat-completions path."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def _check_endpoint_url(name: str, target: str) -> None:
    import httpx

    try:
        url = httpx.URL(chat_completions_url(target))
    except (httpx.InvalidURL, ValueError) as err:
        raise ConfigError(f"policy {name!r}: endpoint URL {target!r} is malformed ({err}); "
                          f"e.g. {name}=http://localhost:8000/v1") from None
    if not url.host:
        raise ConfigError(f"policy {name!r}: endpoint URL {target!r} names no host; e.g. {name}=http://localhost:8000/v1")


def _check_model_folder(name: str, target: str) -> None:
    from pathlib import Path

    path = Path(target).expanduser()
    if not path.exists():
        hub_like = target.count("/") == 1 and not target.startswith((".", "/", "~", "models/", "outputs/"))
        if hub_like:
            return
        raise ModelNotFoundError(f"model folder {target} of policy {name!r} does not exist; run the stage that "
                                 "writes it (model-init, sft, grpo) or fix the policy list")
    from safetensors import SafetensorError, safe_open
    from transformers import AutoConfig

    def broken(why: str) -> ModelNotFoundError:
        return ModelNotFoundError(f"model folder {target} of policy {name!r} {why}; rerun the stage that "
                                  "wrote it (model-init, sft, grpo) or fix the policy list")

    problem = model_folder_problem(path)
    if problem:
        raise broken(problem)
    special = [p.name for p in path.iterdir() if not (p.is_dir() or p.is_file()) or p.is_symlink() and
               not p.resolve().is_file()]
    if special:   # a FIFO or device would block the first read of it
        raise broken(f"holds {special[0]!r}, which is not a regular file")
    try:
        AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise broken(f"has a config.json that does not load ({_first_line(err)})") from None
    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="numpy") as fh:
                fh.keys()
        except (SafetensorError, OSError) as err:
            raise broken(f"has unreadable weights {file.name} ({_first_line(err)})") from None
    try:
        tokenizer = load_tokenizer(str(path))
    except ModelNotFoundError:
        raise broken("has a tokenizer that does not load") from None
    if getattr(tokenizer, "chat_template", None) is None:
        raise broken("has a tokenizer without a chat template")
    why = _template_problem(tokenizer)
    if why:
        raise broken(f"has a chat template that {why}")


TEMPLATE_SECONDS = 5.0   # rendering one short chat must take well under this (ours: ~1 ms)


def _template_problem(tokenizer: Any) -> str | None:
    """Render the chat template once on a two-message chat in a forked child, killed after TEMPLATE_SECONDS:
    a template that fails (the sandbox refusing `__class__`, say) or loops for ages is found here, in one
    line, before any episode, and a runaway render does not keep burning a core."""
    import multiprocessing as mp

    chat = [{"role": "system", "content": "You control robot1."}, {"role": "user", "content": "Goal: test"}]
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    reader, writer = ctx.Pipe(duplex=False)

    def render() -> None:
        try:
            tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            writer.send(None)
        except Exception as err:   # any failure of a user's template is reported, not raised here
            writer.send(f"{type(err).__name__}: {_first_line(err)[:100]}")

    child = ctx.Process(target=render, daemon=True, name="taskplan-template-check")
    child.start()
    got = reader.poll(TEMPLATE_SECONDS)
    message = reader.recv() if got else None
    if not got:
        child.kill()
    child.join(1.0)
    if not got:
        return f"takes more than {TEMPLATE_SECONDS:g} s to render a two-message chat"
    return None if message is None else f"fails to render ({message})"


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:160] if lines else type(err).__name__


def _length_buckets(order: list[int], lengths: list[int], size: int, tolerance: float) -> list[list[int]]:
    """Consecutive runs of `order` (sorted by length) of at most `size`, longest <= (1 + tolerance) x shortest."""
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < max(1, size) and lengths[i] <= (1 + tolerance) * lengths[out[-1][0]]:
            out[-1].append(i)
        else:
            out.append([i])
    return out
