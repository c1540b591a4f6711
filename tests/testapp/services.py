"""Stand-ins for the external services the guide's examples call, counting their calls."""

from __future__ import annotations

import itertools
import threading
from collections import Counter


class StandIn:
    """Records every call; a named method can be made to raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: Counter[str] = Counter()
        self.args: list[tuple[str, tuple]] = []
        self.failing: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.args.clear()
            self.failing.clear()

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args):
            with self._lock:
                self.calls[method] += 1
                self.args.append((method, args))
                if method in self.failing:
                    raise RuntimeError(f"{self.name}.{method} is down")
                return f"{self.name}-{method}-{next(self._ids)}"

        return call


payment_service = StandIn("payment")
inventory_service = StandIn("inventory")
shipping_service = StandIn("shipping")
external_service = StandIn("external")


class PaymentServiceError(Exception):
    pass


ALL = (payment_service, inventory_service, shipping_service, external_service)


def reset_all() -> None:
    for service in ALL:
        service.reset()
