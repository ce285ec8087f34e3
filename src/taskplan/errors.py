"""Expected failures: one line that names the bad value and the fix.

Only `taskplan.cli.main` catches these (exit code 2, no traceback); any other
exception is a bug and keeps its traceback.
"""


class TaskplanError(Exception):
    """Base class of every expected, user-facing failure."""


class ConfigError(TaskplanError):
    """A parameter or configuration value is impossible."""


class UnknownTaskError(TaskplanError):
    """A task name is not in the catalogue."""


class InstanceError(TaskplanError):
    """A kitchen instance (seed, layout or instance file) is malformed."""


class DatasetError(TaskplanError):
    """A trajectory file or single-turn dataset is malformed or fails validation."""


class ModelNotFoundError(TaskplanError):
    """A model path or hub id cannot be loaded."""


class PlanningError(TaskplanError):
    """The expert could not find a plan within its limits."""


class PlanningTimeout(PlanningError):
    """The expert ran out of its time budget (the instance may still be solvable with more time)."""
