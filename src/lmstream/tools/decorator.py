"""``@tool``: a Python function (sync or async) as a streaming tool.

    @tool
    def add(a: float, b: float) -> float:
        '''Add two numbers.'''
        return a + b

    @tool(timeout=120)
    async def research(topic: str, ctx: ToolContext) -> str:
        ctx.progress("searching", 10, f"looking up {topic}")
        ...
        ctx.chunk("First finding. ")

* The input schema comes from the signature (pydantic), the description from the
  docstring; both can be given instead. Arguments are validated and converted by the
  same pydantic model before the call.
* A parameter annotated ``ToolContext`` (or named ``ctx``/``context`` without an
  annotation) gets the run's context: the tool reports its own progress and chunks.
  Without one, the tool gets automatic progress: ``starting`` (0%), ``processing``,
  ``finalizing`` (100%).
* A generator (sync or async) streams what it yields as chunks; its result is the text.
* A synchronous function runs on a daemon tool thread (``threads.py``: reused when
  idle, a new one when none is, so one that never returns blocks nothing); when the run is cancelled or times out, the run stops waiting
  at once and the context's ``cancelled`` flag is set: the function's next
  ``progress``/``chunk`` raises ``ToolCancelled``, or it checks ``ctx.cancelled``.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import BaseModel, ValidationError, create_model

from lmstream.tools.base import ToolContext, ToolError
from lmstream.tools.context import RunContext
from lmstream.tools.threads import tool_threads

__all__ = ["FunctionTool", "run_in_thread", "tool"]

_CONTEXT_NAMES = ("ctx", "context")


@dataclass(eq=False)
class FunctionTool:
    """A ``Tool`` made from a function (what ``@tool`` returns; still callable)."""

    function: Callable[..., Any]
    name: str
    description: str
    input_schema: Mapping[str, Any]
    timeout: float | None = None
    _model: type[BaseModel] = field(repr=False, default=BaseModel)
    _context_param: str | None = field(repr=False, default=None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        try:
            parsed = self._model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolError(f"bad arguments for {self.name}: {exc.errors()[0]['msg']}") from None
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self._context_param is not None:
            kwargs[self._context_param] = context
        automatic = self._context_param is None
        if automatic:
            context.progress("starting", 0)
            context.progress("processing")
        fn = self.function
        value: Any = None  # a generator's result is the text it streamed
        if inspect.isasyncgenfunction(fn):
            await _drain_async(fn(**kwargs), context)
        elif inspect.iscoroutinefunction(fn):
            value = await fn(**kwargs)
        elif inspect.isgeneratorfunction(fn):
            await run_in_thread(lambda: _drain_sync(fn(**kwargs), context))
        else:
            value = await run_in_thread(lambda: fn(**kwargs))
        if automatic:
            context.progress("finalizing", 100)
        return value


async def _drain_async(generator: typing.AsyncIterator[Any], context: ToolContext) -> None:
    async for piece in generator:
        context.chunk(str(piece))


def _drain_sync(generator: typing.Iterator[Any], context: ToolContext) -> None:
    for piece in generator:
        context.chunk(str(piece))


async def run_in_thread(work: Callable[[], Any]) -> Any:
    """``work()`` on a daemon tool thread (``threads.py``); cancelling the await stops the
    waiting, not the thread (the tool's context flag tells it to stop)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled: nobody waits for it any more
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = work(), None
        except BaseException as exc:
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)  # after every report it made
        except RuntimeError:  # the loop is closed
            pass

    tool_threads().submit(target)
    return await future


def _context_param(fn: Callable[..., Any], hints: dict[str, Any]) -> str | None:
    for name, parameter in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if hint is not None and hint in (ToolContext, RunContext):
            return name
        if hint is None and parameter.annotation is inspect.Parameter.empty and name in _CONTEXT_NAMES:
            return name
    return None


def _make(
    fn: Callable[..., Any],
    name: str | None,
    description: str | None,
    input_schema: Mapping[str, Any] | None,
    timeout: float | None,
) -> FunctionTool:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: treat the arguments as Any
        hints = {}
    context_param = _context_param(fn, hints)
    fields: dict[str, Any] = {}
    for pname, parameter in inspect.signature(fn).parameters.items():
        if pname == context_param or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[pname] = (hints.get(pname, Any), default)
    tool_name = name or fn.__name__
    model = create_model(f"{tool_name}_arguments", **fields)
    schema = dict(input_schema) if input_schema is not None else _clean_schema(model.model_json_schema())
    return FunctionTool(
        function=fn,
        name=tool_name,
        description=description if description is not None else inspect.getdoc(fn) or "",
        input_schema=schema,
        timeout=timeout,
        _model=model,
        _context_param=context_param,
    )


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    input_schema: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    input_schema: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make ``fn`` a tool; ``@tool`` or ``@tool(name=..., timeout=...)``."""
    if fn is not None:
        return _make(fn, name, description, input_schema, timeout)

    def decorate(function: Callable[..., Any]) -> FunctionTool:
        return _make(function, name, description, input_schema, timeout)

    return decorate
