"""The one prompt shape shared by the dataset, training and multi-turn evaluation.

ReAct-style (docs/kitchen.md 9): a system message with the kitchen's rules and
recipe hints, then per turn one user message holding the previous turn's
reasoning and action (history reduced to one turn), an `Error Feedback:` line
when the last reply was rejected, and the current observation. The expected
reply ends with `Action: <one valid action>`; a `Reasoning:` part is allowed.
Single-turn training rows use exactly the prompt the agent would see at that
state of the expert trajectory, so training and evaluation see the same text.
"""

from __future__ import annotations

from taskplan.data.compact import compact_observation

SYSTEM_PROMPT = (
    "You control robot1 in a kitchen. Each turn you see the kitchen state, the valid actions and the goal. "
    "Rules: the robot holds one item or container at a time; cook, cut and fry need the item alone on a "
    "stove, cutting board or fryer and empty hands; cutting takes 3 cuts; cooking, frying, filling and "
    "boiling finish 3 steps after they start (wait with 'Do nothing' or do other work); items stack only "
    "on items; a pot must contain water before ingredients are added; meals can be poured from a pot "
    "into a bowl. Recipes: sandwich = bread, fillings, bread; hamburger = bottom bun, fillings, top bun; "
    "soup = fill a pot with water at a sink, boil it on a stove, add the ingredients, pour it into a bowl "
    "on a table. Reply with one line 'Action: <one of the valid actions, copied exactly>'."
)
SHORT_SYSTEM_PROMPT = "You control robot1 in a kitchen. Reply with 'Action: <one valid action>'."
# full: the paper's prompt (gpu-1.5b); short: short system text, the kitchen's observation as printed;
# compact: short system text and the observation in compact form (taskplan.data.compact, cpu-tiny).
PROMPT_STYLES = ("full", "short", "compact")


def system_prompt(style: str = "full") -> str:
    return SYSTEM_PROMPT if style == "full" else SHORT_SYSTEM_PROMPT


def user_message(observation: str, prev_action: str | None = None, prev_reasoning: str | None = None,
                 error: str | None = None, style: str = "full") -> str:
    if style == "compact":
        observation = compact_observation(observation)
    parts = []
    if prev_reasoning:
        parts.append(f"Previous reasoning: {prev_reasoning}")
    if prev_action:
        parts.append(f"Previous action: {prev_action}")
    if error:
        parts.append(f"Error Feedback: {error}")
    parts.append(observation)
    return "\n\n".join(parts)


def build_messages(observation: str, prev_action: str | None = None, prev_reasoning: str | None = None,
                   error: str | None = None, style: str = "full") -> list[dict[str, str]]:
    """Chat messages for one turn (system + user)."""
    return [{"role": "system", "content": system_prompt(style)},
            {"role": "user", "content": user_message(observation, prev_action, prev_reasoning, error, style)}]


def answer_text(action: str, reasoning: str | None = None) -> str:
    """The target reply for an expert action, with the expert's reasoning line first when given."""
    return f"Action: {action}" if not reasoning else f"Reasoning: {reasoning}\nAction: {action}"
