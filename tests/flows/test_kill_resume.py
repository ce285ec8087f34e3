"""A real kill: `taskplan pipeline` is SIGKILLed mid-GRPO, and the next run resumes GRPO from its last
complete checkpoint while every earlier stage comes from the cache."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKPLAN = str(Path(sys.executable).with_name("taskplan"))
STAGES = "generate,validate,build_dataset,model_init,sft,grpo"


def _grpo_config(project: Path):
    from taskplan.config import load_config
    from taskplan.train.grpo import GrpoConfig

    return load_config(GrpoConfig, "grpo", project / "params.yaml")


@pytest.mark.slow
def test_killed_pipeline_resumes_grpo_from_the_last_checkpoint(tmp_path, new_micro_project):
    project = new_micro_project(tmp_path / "project")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect_home"), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    cmd = [TASKPLAN, "pipeline", "--flow", f"{ROOT / 'flows' / 'pipeline.py'}:taskplan_pipeline", "--stages", STAGES,
           "--set", "grpo.max_steps=200", "--set", "grpo.save_steps=5"]
    checkpoints = project / _grpo_config(project).checkpoint_dir

    def complete_step() -> int:
        done = [int(p.parent.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*/taskplan_complete.json")]
        return max(done, default=0)

    with (tmp_path / "first.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 400
        while complete_step() < 10:
            assert proc.poll() is None, f"pipeline ended early:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "GRPO did not reach its 10th step in time"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)               # the pipeline's own process group
        proc.wait()
    assert not (project / "models" / "grpo").exists(), "killed before GRPO finished"

    second = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    found = re.search(rf"resuming from \S*{re.escape(str(checkpoints.relative_to(project)))}/checkpoint-(\d+) "
                      r"\(same model, data and config\)", second.stderr)
    assert found and int(found.group(1)) >= 10, second.stderr[-3000:]
    lines = dict(ln.split(maxsplit=1) for ln in second.stdout.splitlines() if ln.strip())
    assert all(lines[s].startswith("(cached)") for s in STAGES.split(",")[:-1]), second.stdout
    assert "grpo: 200 steps" in lines["grpo"]
    assert (project / "models" / "grpo" / "config.json").exists()
