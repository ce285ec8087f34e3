"""The action parser: tolerant where it should be, never raising on any input."""

import random
import string

from taskplan.kitchen.parse import parse_action

VALID = ["Move robot1 from table1 to table2", "Pick up cheese1 from table1 using robot1", "Do nothing"]


def test_accepts_action_line_with_case_whitespace_and_period():
    for reply in ["Action: Move robot1 from table1 to table2",
                  "Reasoning: go get it\nAction:   move ROBOT1 from table1 to table2.  ",
                  "  Move robot1 from table1 to table2.", "**Action:** `Do nothing`"]:
        res = parse_action(reply, VALID)
        assert res.ok, reply
        assert res.action in VALID
    assert parse_action("Reasoning: x\nAction: Do nothing", VALID).has_reasoning


def test_reports_why_a_reply_is_rejected():
    assert parse_action("I think we should cook.", VALID).error.startswith("missing action")
    res = parse_action("Action: Fly to the moon", VALID)
    assert not res.ok and res.error == "action 'Fly to the moon' is not valid"
    assert parse_action("Action:", VALID).error.startswith("empty action")
    assert parse_action(None, VALID).error == "reply is not text"


def test_last_action_line_wins():
    res = parse_action("Action: Do nothing\nAction: Pick up cheese1 from table1 using robot1", VALID)
    assert res.action == VALID[1]


def test_fuzz_never_raises():
    rng = random.Random(0)
    alphabet = string.printable + "é漢\u0000\u200b"
    for n in range(10_000):
        if n % 2:
            base = list(rng.choice(VALID) if rng.random() < 0.5 else "Action: " + rng.choice(VALID))
            for _ in range(rng.randint(1, 4)):   # mutate: delete, insert or swap a character
                k = rng.randrange(len(base) + 1)
                op = rng.random()
                if op < 0.33 and base:
                    base.pop(min(k, len(base) - 1))
                elif op < 0.66:
                    base.insert(k, rng.choice(alphabet))
                elif base:
                    base[min(k, len(base) - 1)] = rng.choice(alphabet)
            reply = "".join(base)
        else:
            reply = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        res = parse_action(reply, VALID)
        assert (res.action is None) != (res.error is None)
        assert res.action is None or res.action in VALID


def test_patterns_stay_on_one_line():
    """A line-start pattern that may run across line breaks is quadratic on "\n" * n (11 s at n = 16000)."""
    assert not parse_action("Action\n:\nDo nothing", VALID).ok
    assert parse_action("\n\n  \t Action:  Do nothing \r\n\n", VALID).action == "Do nothing"
    assert parse_action("\n" * 16000, VALID).error.startswith("missing action")
    assert parse_action(" \n" * 16000 + "Reasoning: x\nAction: Do nothing", VALID).has_reasoning


def test_only_the_tail_of_a_long_reply_is_parsed(monkeypatch):
    import taskplan.kitchen.parse as parse

    seen = []

    class Spy:
        def __init__(self, pattern):
            self.pattern = pattern

        def findall(self, text):
            seen.append(len(text))
            return self.pattern.findall(text)

        def search(self, text):
            seen.append(len(text))
            return self.pattern.search(text)

    monkeypatch.setattr(parse, "_ACTION_LINE", Spy(parse._ACTION_LINE))
    monkeypatch.setattr(parse, "_REASONING", Spy(parse._REASONING))
    filler = "Action: Fly away\n" + "x" * 50 + "\n" * 1_000_000
    assert parse_action(filler + "Action: Do nothing" + " \n" * 100_000, VALID).action == "Do nothing"
    assert seen and max(seen) <= parse.MAX_REPLY_CHARS
    assert not parse_action("Action: Do nothing" + "x" * parse.MAX_REPLY_CHARS, VALID).ok   # the cut line is dropped
