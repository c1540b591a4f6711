"""Throwaway apps for the discovery tests (``tests/test_checks.py``); never installed.

Each module appends its name to ``IMPORTED`` when it is imported.
"""

IMPORTED: list[str] = []
