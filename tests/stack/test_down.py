"""infra/local/down.sh against stand-in processes (no servers): how it stops the worker's flow runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from tests.stack.conftest import ROOT

# A flow run whose first SIGTERM is lost, as when Python drops the exception Prefect's handler raises
# because the signal landed inside a finaliser: it ignores the first one and exits on the second.
FLOW_RUN = textwrap.dedent("""
    import pathlib, signal, sys, time
    seen = pathlib.Path(sys.argv[1])
    def on_term(sig, frame):
        seen.write_text(str(int(seen.read_text() or 0) + 1))
        if int(seen.read_text()) >= 2:
            sys.exit(0)
    seen.write_text("0")
    signal.signal(signal.SIGTERM, on_term)
    while True:
        time.sleep(0.05)
""")
# The worker: starts the flow run in its own session and reaps it when it ends (as Prefect's process
# worker does, so the flow run's /proc entry is gone while down.sh still watches its PID).
WORKER = textwrap.dedent("""
    import subprocess, sys, time
    run = subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]], start_new_session=True)
    while True:
        run.poll()
        time.sleep(0.05)
""")


def test_a_flow_run_that_lost_its_first_sigterm_gets_a_second_before_any_sigkill(tmp_path):
    stack = tmp_path / "stack"
    (stack / "run").mkdir(parents=True)
    (tmp_path / "flow_run.py").write_text(FLOW_RUN)
    (tmp_path / "worker.py").write_text(WORKER)
    seen = tmp_path / "sigterms"
    # the command line names the worker's program, which is how down.sh knows the PID file is still ours
    worker = subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), str(tmp_path / "flow_run.py"),
                               str(seen), "prefect worker start"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (seen.exists() and seen.read_text() == "0"):
            assert time.monotonic() < deadline, "the stand-in flow run never started"
            time.sleep(0.05)
        (stack / "run" / "worker.pid").write_text(str(worker.pid))
        env = {**os.environ, "TASKPLAN_STACK_DIR": str(stack), "TASKPLAN_STOP_SECONDS": "4"}
        out = subprocess.run([str(ROOT / "infra" / "local" / "down.sh"), "worker"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "SIGTERM again" in out.stderr and "SIGKILL" not in out.stderr, out.stderr
        assert seen.read_text() == "2", "the flow run did not end on its second SIGTERM"
        assert worker.wait(timeout=10) is not None and not (stack / "run" / "worker.pid").exists()
    finally:
        if worker.poll() is None:
            worker.kill()
