"""Server-side automations the taskplan stack relies on; run once per Prefect server (idempotent).

    PREFECT_API_URL=http://127.0.0.1:4200/api PREFECT_API_AUTH_STRING=user:password \
        python infra/prefect_automations.py [--zombie-seconds 300]

(The stack's server runs with basic auth: the Prefect client sends PREFECT_API_AUTH_STRING, which
.stack/client.env and compose's services set.)

"taskplan: crash zombie flow runs": a flow run started from a deployment sends a heartbeat every
PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (the worker's environment; Prefect's default is 180). When the
machine or the worker dies, nothing reports the run's end and it would stay RUNNING forever; this
automation marks it Crashed once no heartbeat and no final state came for `--zombie-seconds` (Prefect's
recipe, docs.prefect.io/v3/advanced/detect-zombie-flows; self-hosted servers do not create it). Keep the
timeout at least twice the heartbeat frequency. A Crashed run frees the deployment's concurrency slot, so
the next scheduled or queued run starts; the stages it had finished are served from the result cache.

Called by infra/local/up.sh and by the prefect-deploy service of infra/docker-compose.yml.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

ZOMBIE_AUTOMATION = "taskplan: crash zombie flow runs"


def zombie_automation(seconds: int):
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=ZOMBIE_AUTOMATION,
        description=f"Marks a flow run Crashed when it sent no heartbeat for {seconds} s (its process is gone).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"No heartbeat for {seconds} s: the flow run's process is gone "
                                            "(worker or machine killed)")],
    )


def ensure_zombie_automation(seconds: int) -> str:
    """Create the automation, or replace it when its timeout changed; returns what was done."""
    from prefect.automations import Automation

    wanted = zombie_automation(seconds)
    try:
        current = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:                       # prefect raises ValueError when no automation has that name
        current = None
    if current is not None:
        if current.trigger.within == wanted.trigger.within and current.enabled:
            return f"kept ({seconds} s)"
        current.delete()
    wanted.create()
    return f"created ({seconds} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zombie-seconds", type=int, default=int(os.environ.get("TASKPLAN_ZOMBIE_SECONDS", "300")))
    args = parser.parse_args()
    if args.zombie_seconds < 30:
        parser.error("--zombie-seconds must be at least 30 (heartbeats come every 30 s at the most)")
    print(f"automation {ZOMBIE_AUTOMATION!r}: {ensure_zombie_automation(args.zombie_seconds)}")


if __name__ == "__main__":
    main()
