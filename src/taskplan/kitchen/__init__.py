"""Text kitchen with Robotouille semantics (docs/kitchen.md)."""

from taskplan.kitchen.env import KitchenEnv, resolve_instance
from taskplan.kitchen.parse import ParsedAction, parse_action
from taskplan.kitchen.state import State, World, step, valid_actions
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, Task, all_tasks, get_task, task_names

__all__ = ["KitchenEnv", "resolve_instance", "ParsedAction", "parse_action", "State", "World", "step",
           "valid_actions", "EVAL_SEEDS", "PAPER_TASKS", "Task", "all_tasks", "get_task", "task_names"]
