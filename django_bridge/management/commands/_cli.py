"""The base of every command of this package, and the argument parsing the run commands share."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["AutomationCommand", "page_link", "parse_json", "parse_kwargs", "run_page_link"]


class AutomationCommand(BaseCommand):
    """Base of the commands: library errors become ``CommandError``; the CLI exits with ``os._exit``.

    An ``AutomationError`` (an unknown workflow, a payload the run refuses, Temporal
    unreachable...) is reported as a ``CommandError`` with its message, both from the command
    line and from ``call_command``.

    The Temporal core can crash at interpreter teardown after the client was used
    (sdk-python #300), so from the command line a command flushes its output and exits
    deliberately; the exit code is kept (``CommandError(returncode=...)``). ``call_command``
    returns normally.
    """

    def execute(self, *args: Any, **options: Any) -> Any:
        from facade import AutomationError

        try:
            return super().execute(*args, **options)
        except AutomationError as exc:
            raise CommandError(exc.message) from None

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


def page_link(path: str | None) -> str | None:
    """``path`` on the site: absolute when ``AUTOMATION["SITE_URL"]`` says where the site is.

    A command has no request to build an absolute URL from; without the setting it prints the
    path, which the reader puts after the address they browse the site at.
    """
    from django_bridge.conf import automation_settings

    if path is None:
        return None
    site = automation_settings.SITE_URL
    return f"{site.rstrip('/')}{path}" if site else path


def run_page_link(run_id: int) -> str | None:
    """The run page of ``run_id`` (``ui/runs/<id>/``), or None when the app's URLs are not mounted."""
    from django_bridge.api.serializers import run_page_url

    return page_link(run_page_url(run_id))
