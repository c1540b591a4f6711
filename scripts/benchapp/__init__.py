"""Models for ``scripts/bench_events.py``: one with events, one without (the baseline)."""
