"""GRPO rewards: exact match with the expert action, and a separate format reward.

TRL calls a reward function as `f(prompts=..., completions=..., **columns)`
where every remaining dataset column arrives as a list aligned with
`completions`; a conversational completion is a list of messages
(`[{"role": "assistant", "content": "..."}]`), a plain one a string.

    exact_match_reward(["Action: Do nothing"], answer=["Do nothing"],
                       valid_actions=[["Do nothing"]])        # -> [1.0]

Both rewards parse replies with the environment's own parser
(`taskplan.kitchen.parse_action`), so "correct" here means exactly what a
multi-turn evaluation would execute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskplan.kitchen import parse_action


def exact_match_reward(completions: Sequence[Any], answer: Sequence[str], valid_actions: Sequence[Sequence[str]],
                       **_: Any) -> list[float]:
    """1.0 iff the reply parses to a valid action equal to the expert action, else 0.0."""
    _check_lengths(completions, answer=answer, valid_actions=valid_actions)
    return [1.0 if is_expert_action(c, a, v) else 0.0 for c, a, v in zip(completions, answer, valid_actions)]


def format_reward(completions: Sequence[Any], valid_actions: Sequence[Sequence[str]], **_: Any) -> list[float]:
    """1.0 iff the reply names one of the valid actions in the expected format, else 0.0."""
    _check_lengths(completions, valid_actions=valid_actions)
    return [1.0 if parse_action(completion_text(c), v).ok else 0.0 for c, v in zip(completions, valid_actions)]


def is_expert_action(completion: Any, answer: str, valid_actions: Sequence[str]) -> bool:
    """The single-turn success criterion (also used for validation accuracy)."""
    parsed = parse_action(completion_text(completion), list(valid_actions))
    return parsed.ok and parsed.action == answer


def completion_text(completion: Any) -> str:
    """The reply text of a completion: a string, or the assistant messages of a conversation, joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        parts = [m.get("content") or "" for m in completion
                 if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "\n".join(str(p) for p in parts)
    return ""


def _check_lengths(completions: Sequence[Any], **columns: Sequence[Any]) -> None:
    for name, values in columns.items():
        if len(values) != len(completions):
            raise ValueError(f"reward column {name!r} has {len(values)} values for {len(completions)} completions")
