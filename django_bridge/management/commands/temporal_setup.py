"""``manage.py temporal_setup``: register the search attributes runs publish, on a real cluster.

A dev server can register them at launch (``temporal server start-dev --search-attribute
AutomationStatus=Keyword ...``); a self-hosted cluster or a dev server started without them
needs this once per namespace. Until they exist the engine simply does not publish them (upserting
an unknown search attribute would fail the workflow task forever).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError

from django_bridge.checks import START_SERVER_HINT

from ._cli import AutomationCommand


class Command(AutomationCommand):
    help = (
        "Register the Temporal search attributes AutomationStatus, AutomationStep and AutomationWaitingFor "
        "(Keyword) on the configured namespace. Idempotent: existing ones are left alone."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="Keep retrying to reach the server for this long (for containers that start together).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from temporalio.api.enums.v1 import IndexedValueType
        from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
        from temporalio.service import RPCError, RPCStatusCode

        from django_bridge.conf import automation_settings as s
        from temporal_worker import client as bridge
        from temporal_worker.workflows import SEARCH_ATTRIBUTE_KEYS

        namespace = str(s.TEMPORAL_NAMESPACE)
        where = f"{s.TEMPORAL_ADDRESS} namespace {namespace}"
        wanted = {key.name: int(key.indexed_value_type) for key in SEARCH_ATTRIBUTE_KEYS}

        async def existing() -> dict[str, int]:
            client = await bridge.get_client()
            resp = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
            return {**dict(resp.system_attributes), **dict(resp.custom_attributes)}

        async def add(missing: dict[str, int]) -> None:
            client = await bridge.get_client()
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )

        deadline = time.monotonic() + float(options["wait"])
        while True:
            try:
                present = bridge.run_sync(existing(), timeout=30)
                break
            except RPCError as err:
                if err.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
                    raise CommandError(self._no_operator_service(where, err)) from None
                failure: Exception = err
            except Exception as err:  # not reachable yet: connection refused, timeouts
                failure = err
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"cannot list search attributes on {where}: {str(failure).rstrip('.')}. {START_SERVER_HINT} "
                    "Pass --wait SECONDS while the server starts."
                )
            time.sleep(2)

        clashes = [name for name, kind in wanted.items() if name in present and present[name] != kind]
        if clashes:
            raise CommandError(
                f"search attributes {', '.join(clashes)} exist on {where} with another type; they must be Keyword. "
                "Remove them (temporal operator search-attribute remove) and run this command again."
            )
        missing = {name: kind for name, kind in wanted.items() if name not in present}
        for name in sorted(set(wanted) - set(missing)):
            self.stdout.write(f"{name}: already registered on {where}")
        if missing:
            try:
                bridge.run_sync(add(missing), timeout=60)
            except RPCError as err:
                if err.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
                    raise CommandError(self._no_operator_service(where, err)) from None
                raise CommandError(f"could not register {', '.join(sorted(missing))} on {where}: {err}") from None
            for name, kind in sorted(missing.items()):
                self.stdout.write(
                    f"{name}: registered as {IndexedValueType.Name(kind).removeprefix('INDEXED_VALUE_TYPE_')} on {where}"
                )
        self.stdout.write("search attributes ready: runs started from now on publish them")

    @staticmethod
    def _no_operator_service(where: str, err: Exception) -> str:
        return (
            f"{where} does not let this client register search attributes ({err}). On Temporal Cloud add "
            "AutomationStatus, AutomationStep and AutomationWaitingFor as Keyword in the namespace settings "
            "(web UI or tcld); elsewhere use credentials with admin rights."
        )
