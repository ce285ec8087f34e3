"""A pipeline whose process was killed (SIGKILL: no handler runs) leaves its MLflow runs RUNNING; the next
pipeline run ends them KILLED once Prefect has the flow run in a final state."""

from __future__ import annotations


def test_runs_of_a_finished_flow_run_left_running_are_closed_killed(micro_project, prefect_harness):
    import mlflow
    from prefect import flow

    from taskplan.orchestrate.flow import close_orphaned_runs
    from taskplan.tracking import configure

    @flow
    def dies() -> None:
        raise RuntimeError("killed")

    state = dies(return_state=True)
    assert state.is_final()
    exp = configure("taskplan")
    client = mlflow.MlflowClient()
    orphan = client.create_run(exp, tags={"taskplan.kind": "pipeline",
                                          "taskplan.flow_run_id": str(state.state_details.flow_run_id)})
    stage = client.create_run(exp, tags={"taskplan.kind": "stage", "mlflow.parentRunId": orphan.info.run_id})
    alive = client.create_run(exp, tags={"taskplan.kind": "pipeline", "taskplan.flow_run_id": ""})

    closed = close_orphaned_runs("taskplan")
    assert sorted(closed) == sorted([orphan.info.run_id, stage.info.run_id])
    assert {client.get_run(r).info.status for r in closed} == {"KILLED"}
    assert client.get_run(orphan.info.run_id).data.tags["taskplan.error"].endswith("ended Failed")
    assert client.get_run(alive.info.run_id).info.status == "RUNNING", "a run without a finished flow stays"
