"""Optimal, uniquely tie-broken expert plans (planner.py) and the noisy expert (noisy.py)."""
