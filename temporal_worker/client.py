"""The Temporal client, and the one background event loop that owns it in each process.

Django code is synchronous, the Temporal client is async. Every process gets one event loop
on a daemon thread; sync callers hand it coroutines (``run_sync``) and wait for the answer.
The worker runs on the same loop, so a step that calls ``engine.signal`` reuses the worker's
connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio.client import Client

from django_bridge.conf import automation_settings

__all__ = [
    "connect",
    "current_client",
    "get_client",
    "loop",
    "reset_client",
    "run_sync",
    "server_features",
    "set_client",
]

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
    """Run ``coro`` on the background loop and wait for its result."""
    target = loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError(
            "a synchronous engine call was made on the Temporal event loop; in async code use the "
            "async twin (await engine.astart/asignal/acancel)."
        )
    return asyncio.run_coroutine_threadsafe(coro, target).result(timeout)


async def connect() -> Client:
    """Connect with the AUTOMATION settings (address, namespace, TLS, API key)."""
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
