"""Multi-turn evaluation: how users judge a planner.

    policies.py  the Policy protocol (+ Scorer for the bound): random, expert, HF causal LM, chat endpoint
    rollout.py   batched multi-turn episodes under the original protocol (docs/kitchen.md 9), transcripts
    metrics.py   SR, ASAT, ASST, invalid-action rate per task (the metrics/eval.json contract)
    bound.py     the product bound along the expert trajectory
    stage.py     stages `evaluate` and `cross_task` (configs, run_* functions)
    report.py    stage `compare`: report.md, PNG plots, CSVs for dvc plots, candidate verdict

Light to import: torch, transformers, httpx and matplotlib load inside the
functions that need them.
"""
