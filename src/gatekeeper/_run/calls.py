"""Calling a plugin method that may be ``def`` or ``async def``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

__all__ = ["call"]

T = TypeVar("T")


async def call(func: Callable[..., T | Awaitable[T]], *args: Any) -> T:
    """Call a plugin method that may be ``def`` or ``async def``.

    Coroutine functions are awaited; plain functions run in a worker thread so a
    blocking backend never stalls the other queries of a checkpoint.
    """
    if inspect.iscoroutinefunction(func):
        return cast("T", await func(*args))
    result = await asyncio.to_thread(func, *args)
    if inspect.isawaitable(result):
        result = await result
    return cast("T", result)
