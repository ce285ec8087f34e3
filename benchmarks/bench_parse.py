"""Action-parser benchmark: hostile replies against the parser as it was, measured in the same run.

    python -m benchmarks.bench_parse

The anchor is the parser as it was (`^\\s*...` patterns in MULTILINE mode, which
may run across line breaks, and no length cap): quadratic on n newlines. Each line
reads `name  value unit  ratio x anchor`.
"""

from __future__ import annotations

import re
import sys
import time
from contextlib import contextmanager

from taskplan.kitchen import parse
from taskplan.kitchen.parse import parse_action

OLD_ACTION_LINE = re.compile(r"^\s*(?:[*_#>\-]+\s*)?action\s*[*_]*\s*:\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
OLD_REASONING = re.compile(r"^\s*(?:[*_#>\-]+\s*)?reasoning\s*[*_]*\s*:", re.IGNORECASE | re.MULTILINE)
VALID = ["Move robot1 from table1 to table2", "Do nothing"]
REPLIES = {
    "newlines": lambda n: "\n" * n,
    "blank_lines": lambda n: " \n" * (n // 2),
    "long_line": lambda n: "Action:" + " " * n + "x",
    "newlines_then_action": lambda n: "\n" * n + "Action: Do nothing",
}


def main() -> None:
    parse_action("Action: Do nothing", VALID)   # burn-in
    for n in (2_000, 4_000, 8_000, 16_000):
        for name, make in REPLIES.items():
            reply = make(n)
            new = _seconds(lambda reply=reply: parse_action(reply, VALID))
            with _old_parser():
                old = _seconds(lambda reply=reply: parse_action(reply, VALID))
            print(f"parse/{name}/{n}  {new * 1e3:.3f} ms  {new / old:.4f}x old_parser ({old * 1e3:.1f} ms)")


@contextmanager
def _old_parser():
    """The parser as it was: the old patterns, no length cap."""
    saved = parse._ACTION_LINE, parse._REASONING, parse.MAX_REPLY_CHARS
    parse._ACTION_LINE, parse._REASONING, parse.MAX_REPLY_CHARS = OLD_ACTION_LINE, OLD_REASONING, sys.maxsize
    try:
        yield
    finally:
        parse._ACTION_LINE, parse._REASONING, parse.MAX_REPLY_CHARS = saved


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
