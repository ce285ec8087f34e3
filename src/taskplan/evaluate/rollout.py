"""Batched multi-turn rollouts under the original episode protocol (docs/kitchen.md 9).

    episodes = run_episodes(policy, [EpisodeSpec("burger", 42), ...], RolloutSettings())
    write_transcripts("outputs/transcripts/sft.jsonl", episodes)

All episodes advance together: each round builds one prompt per active episode
and asks the policy once for the whole batch (at most `max_batch` episodes are
active; a finished one frees its slot for the next, so `max_batch=1` is the
one-episode-at-a-time baseline). Per reply:

- a valid action is executed and costs one step; the episode succeeds as soon
  as the goal holds, and fails when `cap` steps are spent without it;
- an unparseable reply or an action not in the list is not executed and costs
  no step; the same observation is asked again with an `Error Feedback:` line.
  After `max_retries` (5) such replies in a row the round is exhausted and the
  turn is asked afresh (no feedback line); the `max_exhausted`-th (3rd)
  exhausted round ends the episode as a failure;
- the special action `Finish` ends the episode (a failure: the goal did not hold).

The prompt is `taskplan.data.prompts.build_messages` with the previous turn's
action and, when that reply had a `Reasoning:` part, its reasoning (history
on), exactly the shape of the single-turn training rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from taskplan.data.prompts import PROMPT_STYLES, build_messages
from taskplan.errors import ConfigError, DatasetError
from taskplan.evaluate.policies import Policy, Turn
from taskplan.io import atomic_write_jsonl
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.parse import parse_action
from taskplan.kitchen.tasks import get_task

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]        # (episodes finished, episodes total)
_REASONING = re.compile(r"^\s*(?:[*_#>\-]+\s*)?reasoning\s*[*_]*\s*:\s*(.*?)(?=^\s*(?:[*_#>\-]+\s*)?action\s*[*_]*\s*:|\Z)",
                        re.IGNORECASE | re.MULTILINE | re.DOTALL)
MAX_REASONING_CHARS = 1000


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    history: bool = True          # show the previous turn's action (and reasoning) in the prompt
    prompt_style: str = "full"    # system prompt of taskplan.data.prompts: full | short
    max_retries: int = 5          # invalid replies in a row that exhaust one turn
    max_exhausted: int = 3        # exhausted turns that end the episode (failure)
    max_batch: int = 64           # episodes advanced together (1 = one episode at a time)
    keep_prompts: bool = False    # store each turn's user message in the transcript (large)
    reasoning: int = 0            # subgoals in the expert's reasoning line (as the training rows; 0: none)

    def __post_init__(self) -> None:
        if self.prompt_style not in PROMPT_STYLES:
            raise ConfigError(f"prompt_style={self.prompt_style!r}; use one of: {', '.join(PROMPT_STYLES)}")
        if self.max_retries < 1 or self.max_exhausted < 1 or self.max_batch < 1:
            raise ConfigError(f"max_retries={self.max_retries}, max_exhausted={self.max_exhausted} and "
                              f"max_batch={self.max_batch} must all be >= 1")


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    task: str
    seed: int
    cap: int | None = None        # step cap; None = the task's ceil(1.5 x listed optimum)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.seed}"

    def step_cap(self) -> int:
        cap = self.cap if self.cap is not None else get_task(self.task).step_cap
        if cap is None:
            raise ConfigError(f"task {self.task} has no listed optimum; give its episodes a step cap")
        return cap


@dataclass
class Episode:
    """One finished episode: the record metrics and transcripts are made of."""

    task: str
    seed: int
    cap: int
    success: bool = False
    steps: int = 0                 # executed actions
    replies: int = 0               # policy calls (valid + invalid)
    invalid: int = 0               # replies not executed
    exhausted: int = 0             # turns that used up max_retries
    end: str = ""                  # goal | cap | invalid | finish
    optimum: int | None = None     # the instance's true optimum (planner), when known
    actions: list[str] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.seed}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Episode:
        return cls(**doc)


def episode_specs(tasks: Iterable[str], seeds: Iterable[int], caps: dict[str, int] | None = None) -> list[EpisodeSpec]:
    """Every (task, seed) pair, task-major, with optional per-task caps."""
    seeds = list(seeds)
    return [EpisodeSpec(get_task(t).name, s, (caps or {}).get(t)) for t in tasks for s in seeds]


def run_episodes(policy: Policy, specs: Sequence[EpisodeSpec], settings: RolloutSettings = RolloutSettings(),
                 progress: Progress | None = None) -> list[Episode]:
    """Play every spec to its end; results in the order of `specs`."""
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError("duplicate (task, seed) episodes; list each task and seed once")
    waiting = deque(enumerate(specs))
    active: list[_Live] = []
    results: list[Episode | None] = [None] * len(specs)
    finished = 0
    while waiting or active:
        while waiting and len(active) < settings.max_batch:
            index, spec = waiting.popleft()
            live = _Live(index, spec, settings)
            if live.episode.end:           # goal already true at reset
                results[index], finished = live.episode, finished + 1
            else:
                active.append(live)
        if not active:
            continue
        turns = [live.turn() for live in active]
        replies = policy.act(turns)
        if len(replies) != len(turns):
            raise RuntimeError(f"policy {policy.name} answered {len(replies)} replies to {len(turns)} turns")
        for live, reply in zip(active, replies):
            live.apply(reply)
        still = []
        for live in active:
            if live.episode.end:
                results[live.index], finished = live.episode, finished + 1
            else:
                still.append(live)
        if len(still) != len(active) and progress is not None:
            progress(finished, len(specs))
        active = still
    return [r for r in results if r is not None]


def write_transcripts(path: Path | str, episodes: Iterable[Episode]) -> int:
    """One episode a line (JSONL); returns the number of lines."""
    return atomic_write_jsonl(path, (ep.to_json() for ep in episodes))


def read_transcripts(path: Path | str) -> list[Episode]:
    try:
        lines = Path(path).read_text().splitlines()
        return [Episode.from_json(json.loads(line)) for line in lines if line.strip()]
    except (OSError, ValueError, TypeError) as err:
        raise DatasetError(f"cannot read transcripts {path} ({str(err)[:120]}); rerun `taskplan evaluate`") from None


# A reply is kept whole in transcripts up to this many characters (an endpoint may send megabytes); longer
# ones keep their head and tail with a marker. The previous turn's reasoning shown in the next prompt is
# cut to MAX_REASONING_CHARS (the expert's is ~90).
MAX_TRANSCRIPT_REPLY = 4096
MAX_REASONING_CHARS = 1024


def transcript_reply(reply: str) -> str:
    if not isinstance(reply, str) or len(reply) <= MAX_TRANSCRIPT_REPLY:
        return reply
    half = MAX_TRANSCRIPT_REPLY // 2
    return f"{reply[:half]}\n[... {len(reply) - 2 * half} characters cut ...]\n{reply[-half:]}"


def extract_reasoning(reply: str) -> str | None:
    """The `Reasoning:` part of a reply (up to its `Action:` line), or None."""
    found = _REASONING.search(reply or "")
    if not found:
        return None
    text = " ".join(found.group(1).split())
    return text[:MAX_REASONING_CHARS] or None


class _Live:
    """An episode in progress: the environment plus the protocol's counters."""

    def __init__(self, index: int, spec: EpisodeSpec, settings: RolloutSettings):
        self.index, self.settings = index, settings
        self.env = KitchenEnv.from_spec(spec.task, seed=spec.seed)
        self.env.reset()
        self.episode = Episode(task=self.env.task.name, seed=spec.seed, cap=spec.step_cap())
        self.prev_action: str | None = None
        self.prev_reasoning: str | None = None
        self.error: str | None = None
        self.in_a_row = 0
        self._user: str | None = None
        if self.env.done:
            self.episode.success, self.episode.end = True, "goal"
        elif self.episode.cap <= 0:
            self.episode.end = "cap"

    def turn(self) -> Turn:
        s = self.settings
        messages = build_messages(self.env.observation(), self.prev_action if s.history else None,
                                  self.prev_reasoning if s.history else None, self.error, s.prompt_style)
        self._user = messages[-1]["content"] if s.keep_prompts else None
        return Turn(self.episode.key, messages, tuple(self.env.action_texts()), self.env)

    def apply(self, reply: str) -> None:
        ep, s = self.episode, self.settings
        parsed = parse_action(reply, self.env.action_texts())
        ep.replies += 1
        record = {"step": self.env.steps, "reply": transcript_reply(reply), "action": parsed.action,
                  "error": parsed.error}
        if self._user is not None:
            record["prompt"] = self._user
        ep.turns.append(record)
        if parsed.ok:
            self.env.step(parsed.action)
            ep.steps, self.in_a_row, self.error = self.env.steps, 0, None
            ep.actions.append(parsed.action)
            self.prev_action = parsed.action
            reasoning = extract_reasoning(reply) if parsed.has_reasoning else None
            self.prev_reasoning = reasoning[:MAX_REASONING_CHARS] if reasoning else None
            if self.env.done:
                ep.success, ep.end = True, "goal"
            elif ep.steps >= ep.cap:
                ep.end = "cap"
            return
        if parsed.raw is not None and parsed.raw.strip().lower() == "finish":
            ep.end = "finish"
            return
        ep.invalid += 1
        self.in_a_row += 1
        self.error = parsed.error
        if self.in_a_row >= s.max_retries:
            ep.exhausted += 1
            self.in_a_row, self.error = 0, None
            record["exhausted"] = ep.exhausted
            if ep.exhausted >= s.max_exhausted:
                ep.end = "invalid"
