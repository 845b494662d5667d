"""``calculator``: arithmetic on an expression, evaluated safely (never ``eval``).

The expression is parsed with ``ast`` and walked over a whitelist: numbers, ``+ - * /
// % **`` (``^`` is read as a power, as calculators do), unary ``+ -``, parentheses,
the constants ``pi e tau`` and the functions below. Anything else (names, attributes,
calls of anything else, strings, comprehensions) is refused with a message. Sizes are
bounded so no input can take the server's time or memory: the expression's length and
node count, exponents, factorials, and integer results (``MAX_BITS``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from lmstream.tools.base import ToolError
from lmstream.tools.decorator import tool

__all__ = ["MAX_BITS", "calculator", "evaluate"]

MAX_LENGTH = 1000
MAX_NODES = 500
MAX_BITS = 4096  # integers up to ~1233 digits
MAX_FACTORIAL = 450  # 450! has 3,453 bits

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _factorial(n: Number) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise ToolError("factorial needs a whole number")
        n = int(n)
    if n < 0 or n > MAX_FACTORIAL:
        raise ToolError(f"factorial is limited to 0..{MAX_FACTORIAL}")
    return math.factorial(n)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max,
    "sqrt": math.sqrt, "cbrt": math.cbrt, "exp": math.exp, "log": _log, "ln": math.log,
    "log2": math.log2, "log10": math.log10, "floor": math.floor, "ceil": math.ceil,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
    "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "hypot": math.hypot, "degrees": math.degrees, "radians": math.radians,
    "factorial": _factorial, "gcd": math.gcd, "lcm": math.lcm,
}  # fmt: skip


def _check_size(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("only numbers can be computed")
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ToolError(f"the result is too large (more than {MAX_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("the result is not a finite number")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_BITS:
            raise ToolError(f"the result is too large (more than {MAX_BITS} bits)")
    elif abs(exponent) > 10_000 and not isinstance(base, float):
        # float powers overflow to an error quickly; a huge integer exponent of 0, 1 or -1
        # is cheap but still not worth the risk.
        raise ToolError("the exponent is too large")
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError("the result is not a real number")
    return result


def _eval(node: ast.AST) -> Number:
    match node:
        case ast.Expression(body=body):
            return _eval(body)
        case ast.Constant(value=value) if isinstance(value, int | float) and not isinstance(value, bool):
            return _check_size(value)
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _check_size(_UNARY[type(op)](_eval(operand)))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left), _eval(right)
            if type(op) is ast.Pow:
                return _check_size(_power(a, b))
            if type(op) is ast.Mult and isinstance(a, int) and isinstance(b, int):
                if a.bit_length() + b.bit_length() > MAX_BITS + 1:
                    raise ToolError(f"the result is too large (more than {MAX_BITS} bits)")
            return _check_size(_BINARY[type(op)](a, b))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            return _check_size(_FUNCTIONS[name](*(_eval(arg) for arg in args)))
        case ast.Name(id=name):
            raise ToolError(f"unknown name {name!r}; known: {', '.join([*_CONSTANTS, *_FUNCTIONS])}")
        case _:
            raise ToolError(f"not allowed in an expression: {type(node).__name__}")


def evaluate(expression: str) -> Number:
    """The value of ``expression``; ``ToolError`` says what is wrong with a bad one."""
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        # ``^`` is a power, with a power's precedence: 2*3^2 is 18, not (2*3)^2
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ToolError("the expression is nested too deeply") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"the expression has more than {MAX_NODES} parts")
    try:
        return _eval(tree)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (OverflowError, ValueError, TypeError) as exc:
        raise ToolError(f"cannot compute: {exc}") from None


@tool(name="calculator")
def calculator(expression: str) -> int | float | str:
    """Evaluate an arithmetic expression, e.g. "(2 + 3) * sqrt(16) / 2^3". Supports + - * /
    // % ** (or ^), parentheses, pi, e, tau and sqrt, cbrt, exp, log, ln, log2, log10, sin,
    cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, hypot, degrees, radians, abs,
    round, min, max, floor, ceil, factorial, gcd, lcm."""
    value = evaluate(expression)
    if isinstance(value, int) and abs(value) >= 2**53:
        return str(value)  # exact digits; a JSON number this large loses them in most clients
    return value
