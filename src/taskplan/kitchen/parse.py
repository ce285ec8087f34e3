"""Parse a model's reply into an action: never raises, always a typed result.

Accepted: an `Action: <string>` line (the last one wins), tolerant of case,
surrounding whitespace, quotes/backticks and a trailing period; a reply that is
only an action string is accepted too. The action must then equal one of the
valid actions (case-insensitively); the result carries the canonical text.

Parsing is linear in the reply: the patterns never match across a line break,
and only the last MAX_REPLY_CHARS characters are read (from the first whole
line in them), since the last action line is the one that counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REPLY_CHARS = 8192   # a reply is read from its tail; far above any reply budget (max_new_tokens)
_H = r"[^\S\n]*"         # horizontal white space only: a pattern that may span lines is quadratic on "\n" * n
_ACTION_LINE = re.compile(rf"^{_H}(?:[*_#>\-]+{_H})?action{_H}[*_]*{_H}:(.*)$", re.IGNORECASE | re.MULTILINE)
_REASONING = re.compile(rf"^{_H}(?:[*_#>\-]+{_H})?reasoning{_H}[*_]*{_H}:", re.IGNORECASE | re.MULTILINE)
_STRIP = " \t\r\n\"'`*."


@dataclass(frozen=True)
class ParsedAction:
    action: str | None        # canonical valid-action text, or None
    error: str | None         # why the reply is not a valid action ("missing action", ...)
    raw: str | None           # the action string as extracted from the reply
    has_reasoning: bool = False

    @property
    def ok(self) -> bool:
        return self.action is not None


def extract_action(reply: object) -> str | None:
    """The action string the reply names, before any validity check."""
    if not isinstance(reply, str):
        return None
    reply = _tail(reply)
    found = _ACTION_LINE.findall(reply)
    if found:
        return found[-1].strip(_STRIP)
    lines = [ln for ln in reply.strip().splitlines() if ln.strip()]
    if len(lines) == 1 and ":" not in lines[0]:
        return lines[0].strip(_STRIP)
    return None


def normalize(text: str) -> str:
    return " ".join(text.strip(_STRIP).split()).lower()


def parse_action(reply: object, valid_actions: list[str] | tuple[str, ...]) -> ParsedAction:
    try:
        return _parse(reply, valid_actions)
    except Exception as err:  # the contract: never raise on any input
        return ParsedAction(None, f"unparseable reply ({type(err).__name__})", None)


def _parse(reply: object, valid_actions) -> ParsedAction:
    if not isinstance(reply, str):
        return ParsedAction(None, "reply is not text", None)
    reply = _tail(reply)
    has_reasoning = bool(_REASONING.search(reply))
    raw = extract_action(reply)
    if raw is None:
        return ParsedAction(None, "missing action: end the reply with a line 'Action: <one valid action>'",
                            None, has_reasoning)
    if not raw:
        return ParsedAction(None, "empty action: name one of the valid actions", raw, has_reasoning)
    key = normalize(raw)
    for act in valid_actions:
        if normalize(act) == key:
            return ParsedAction(act, None, raw, has_reasoning)
    if not _ACTION_LINE.search(reply):   # a bare line that is no action at all
        return ParsedAction(None, "missing action: end the reply with a line 'Action: <one valid action>'",
                            raw, has_reasoning)
    return ParsedAction(None, f"action '{raw}' is not valid", raw, has_reasoning)


def _tail(reply: str) -> str:
    """The last MAX_REPLY_CHARS characters of a reply (trailing white space dropped first), from the first
    line that starts in them."""
    if len(reply) <= MAX_REPLY_CHARS:
        return reply
    reply = reply.rstrip()
    if len(reply) <= MAX_REPLY_CHARS:
        return reply
    return reply[-MAX_REPLY_CHARS:].partition("\n")[2]
