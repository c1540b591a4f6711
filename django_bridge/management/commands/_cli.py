"""Shared by the short-lived commands (start_run, send_signal, watch_run)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["AutomationCommand", "parse_json", "parse_kwargs"]


class AutomationCommand(BaseCommand):
    """Leaves the process with ``os._exit`` once done when run from the command line.

    The Temporal core can crash at interpreter teardown after the client was used
    (sdk-python #300), so a command flushes its output and exits deliberately; the exit code
    is kept (``CommandError(returncode=...)``). ``call_command`` is unaffected.
    """

    def run_from_argv(self, argv: list[str]) -> None:
        code = 0
        try:
            super().run_from_argv(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        try:
            from temporal_worker import client as bridge

            bridge.reset_client()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def parse_json(raw: str) -> Any:
    """JSON when it parses, else the string itself (so ``name=Jane`` needs no quotes)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--kw {pair!r}: write key=value, e.g. --kw user_id=123 --kw name=Jane")
        kwargs[key.strip()] = parse_json(value)
    return kwargs
