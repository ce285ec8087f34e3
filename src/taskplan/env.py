"""The process environment taskplan runs in, defined once: telemetry of every library off, the model hub
offline (set HF_HUB_OFFLINE=0 to download a hub model), quiet tokenizers and Prefect logs.

    from taskplan.env import quiet_env
    quiet_env()                              # os.environ.setdefault for each (the CLI does it at start)
    python -m taskplan.env                   # KEY=value lines, e.g. `export $(python -m taskplan.env)`

Values already in the environment win. The Makefile exports the same keys (a test keeps them equal).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def quiet_env(environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set each QUIET variable that is not set yet; returns the mapping."""
    environ = os.environ if environ is None else environ
    for key, value in QUIET.items():
        environ.setdefault(key, value)
    return environ


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: QUIET defaults, this process's environment, then `extra`."""
    return {**QUIET, **os.environ, **extra}


if __name__ == "__main__":
    print("\n".join(f"{k}={v}" for k, v in QUIET.items()))
