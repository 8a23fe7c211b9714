"""``python``: a callable named by import path answers the queries.

::

    [sources.kpi]
    type = "python"
    callable = "mycompany.kpis:revenue_per_user"

    # def revenue_per_user(query: gatekeeper.Query) -> float | Measurement | None

The callable may be ``def`` or ``async def``. ``None`` means no data. An exception
is reported as the measurement's reason (INCONCLUSIVE), never as a value.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from .._model import Measurement, Query
from .._options import Options
from .._protocols import PluginContext
from .._redact import shown
from ..exceptions import ConfigError

__all__ = ["PythonSource", "create"]


def resolve(path: str) -> Callable[..., Any]:
    """``"package.module:attribute"`` → the object; a :class:`ConfigError` otherwise."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected 'package.module:function', got {shown(path)}", key="callable")
    if module_name.startswith("."):
        raise ConfigError(
            f"expected an absolute module path, got {shown(module_name)}", key="callable"
        )
    try:
        module = importlib.import_module(module_name)
    except (ImportError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot import {shown(module_name)}: {exc}", key="callable") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"{shown(module_name)} has no {shown(attribute)}", key="callable"
            ) from None
    if not callable(target):
        raise ConfigError(f"{shown(path)} is not callable", key="callable")
    func: Callable[..., Any] = target
    return func


class PythonSource:
    """Calls a user function for each query."""

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        self.name = name
        self._func = func

    async def query(self, query: Query) -> Measurement:
        from .._engine import call  # noqa: PLC0415 - def or async def, like any plugin method

        def no_value(reason: str) -> Measurement:
            return Measurement(
                metric=query.metric,
                variant=query.variant,
                at=query.at,
                value=None,
                source=self.name,
                reason=reason,
            )

        try:
            result = await call(self._func, query)
        except Exception as exc:  # noqa: BLE001 - a user function's error is a reason, not a crash
            return no_value(f"the callable raised {type(exc).__name__}: {exc}")
        if isinstance(result, Measurement):
            return result
        if result is None:
            return no_value("the callable returned no data")
        if isinstance(result, bool) or not isinstance(result, int | float):
            return no_value(f"the callable returned {type(result).__name__}, not a number")
        return Measurement(
            metric=query.metric,
            variant=query.variant,
            at=query.at,
            value=float(result),
            source=self.name,
            query=query.text,
        )


def create(name: str, options: Mapping[str, Any], context: PluginContext) -> PythonSource:
    opts = Options(options)
    path = opts.required_text("callable")
    opts.done()
    return PythonSource(name, resolve(path))
