"""Restricted execution of the Python found in BPMN and DMN diagrams.

Diagrams are edited by policy staff in the modeler, not by developers, so every script
task, gateway condition, DMN cell and timer expression is untrusted input. SpiffWorkflow 3.2
runs such code with plain ``exec``/``eval`` and the interpreter's full builtins, which gives
a diagram author the whole server. This module replaces SpiffWorkflow's script
*environment* (the object that actually calls ``exec``/``eval``) with one that:

* compiles with RestrictedPython, so names and attributes starting with ``_``, ``exec``,
  ``eval`` and the frame/code attributes used for sandbox escapes are refused before the
  code runs, and attribute reads, item access, iteration and writes go through guards;
* refuses ``import`` and class definitions at compile time (scripts only shuffle data);
* offers a small set of builtins and helpers made of functions and classes only: a module
  handed to a script is an escape (``datetime.sys.modules['os']``);
* routes ``+``, ``*``, ``**``, ``<<`` and ``%`` through checks that refuse results beyond
  :data:`MAX_STRING_LENGTH` characters, :data:`MAX_ITEMS` items or :data:`MAX_INT_BITS`
  bits, because RestrictedPython does nothing against ``'a' * 10**10`` or ``2 ** 10**10``;
* inserts a deadline check at the top of every loop body, function body, lambda and
  comprehension, raising :class:`ScriptTimeout` once the evaluation's time budget is spent.

Limits of this in-process layer: a loop that runs entirely in C (one huge ``sorted`` or
``str.replace`` call) is not interrupted by the deadline check, and memory can still be
exhausted by combining permitted operations (appending a million-item list in a loop,
``str()`` of a list holding one large string many times). Treat it as a guard against
accidents: :mod:`app.engine.sandbox` runs the same restricted code in worker processes with
a hard kill and a memory cap, the boundary against a malicious diagram
(:func:`create_script_engine` does that by default).

Compiled code is cached by (source, mode): the same conditions are evaluated over and
over, compiling costs tens to hundreds of µs, and running a cached condition about 2 µs.
"""
from __future__ import annotations

import ast
import builtins
import functools
import math
import operator
import re
import time
from collections.abc import Callable, Sized
from datetime import UTC, date, datetime, timedelta
from types import CodeType, ModuleType
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
)
from SpiffWorkflow.bpmn.script_engine import BasePythonScriptEngineEnvironment, PythonScriptEngine

from app import clock as app_clock

__all__ = [
    "MAX_FORMAT_WIDTH",
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_STRING_LENGTH",
    "RestrictedEnvironment",
    "ScriptLimitExceeded",
    "ScriptRejected",
    "ScriptTimeout",
    "add_days",
    "check_expression",
    "check_script",
    "compile_restricted_code",
    "create_script_engine",
    "iso_days",
    "make_environment",
    "now_utc",
    "set_clock",
]

#: Longest str/bytes a script may build (characters or bytes).
MAX_STRING_LENGTH = 10_000_000
#: Most items a list, tuple or range built by a script may hold.
MAX_ITEMS = 1_000_000
#: Largest integer (in bits) that *, ** and << may produce.
MAX_INT_BITS = 4096
#: Largest width or precision accepted in a format spec ("%5d", f"{x:>5}").
MAX_FORMAT_WIDTH = 10_000
#: Most characters print() output collects; the rest is dropped.
MAX_PRINT_LENGTH = 65_536

DEFAULT_TIME_BUDGET = 1.0
_FILENAME = "<string>"  # SpiffWorkflow looks for this name to report the failing line


class ScriptRejected(ValueError):
    """Diagram code that the restricted compiler refuses; ``lineno`` says where."""

    def __init__(self, message: str, lineno: int = 1):
        super().__init__(message)
        self.lineno = lineno


class ScriptTimeout(Exception):
    """Diagram code ran past its time budget.

    An Exception, not a BaseException, so that SpiffWorkflow marks the task ERROR.
    """


class ScriptLimitExceeded(Exception):
    """Diagram code tried to build a string, sequence or integer beyond the size limits."""


# --- size guards -------------------------------------------------------------------

_TEXT_TYPES = (str, bytes)
_SEQUENCE_TYPES = (str, bytes, list, tuple)


def _refuse_length(sample: Any, length: int) -> None:
    """Raise ScriptLimitExceeded if a sequence like ``sample`` of ``length`` is too long."""
    if isinstance(sample, _TEXT_TYPES):
        if length > MAX_STRING_LENGTH:
            raise ScriptLimitExceeded(
                f"a {type(sample).__name__} of {length} characters exceeds the limit of {MAX_STRING_LENGTH}"
            )
    elif length > MAX_ITEMS:
        raise ScriptLimitExceeded(
            f"a {type(sample).__name__} of {length} items exceeds the limit of {MAX_ITEMS}"
        )


def _refuse_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise ScriptLimitExceeded(f"an integer of about {bits} bits exceeds the limit of {MAX_INT_BITS}")


def _guarded_add(left: Any, right: Any) -> Any:
    """Add like ``+``, refusing concatenations beyond the size limits.

    Doubling a string or list in a loop reaches gigabytes in about thirty iterations,
    faster than the deadline notices.
    """
    if isinstance(left, _SEQUENCE_TYPES) and isinstance(right, _SEQUENCE_TYPES):
        _refuse_length(left, len(left) + len(right))
    return left + right


def _guarded_mul(left: Any, right: Any) -> Any:
    """Multiply like ``*``, refusing oversized repetitions and integer products."""
    if isinstance(left, int):
        if isinstance(right, int):
            _refuse_int_bits(left.bit_length() + right.bit_length() - 1)
        elif isinstance(right, _SEQUENCE_TYPES) and left > 0:
            _refuse_length(right, len(right) * left)
    elif isinstance(left, _SEQUENCE_TYPES) and isinstance(right, int) and right > 0:
        _refuse_length(left, len(left) * right)
    return left * right


def _guarded_pow(base: Any, exponent: Any, modulus: Any = None) -> Any:
    """Raise to a power like ``**`` / ``pow``, refusing integer results beyond MAX_INT_BITS."""
    if modulus is not None:
        # Modular exponentiation stays below the modulus but its cost grows with every operand.
        for value in (base, exponent, modulus):
            if isinstance(value, int):
                _refuse_int_bits(value.bit_length())
        return pow(base, exponent, modulus)
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        magnitude = abs(base)
        if magnitude > 1:
            # log2(magnitude) >= 1, so a huge exponent is refused without a float overflow.
            if exponent > MAX_INT_BITS:
                _refuse_int_bits(exponent)
            _refuse_int_bits(math.ceil(exponent * math.log2(magnitude)))
    return base**exponent


def _guarded_lshift(left: Any, right: Any) -> Any:
    """Shift like ``<<``, refusing integer results beyond MAX_INT_BITS."""
    if isinstance(left, int) and isinstance(right, int) and left and right > 0:
        _refuse_int_bits(right if right > MAX_INT_BITS else left.bit_length() + right)
    return left << right


# Matches one printf-style conversion; groups are the width and the precision.
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")
_DIGIT_RUN = re.compile(r"\d+")


def _refuse_wide_printf(template: str | bytes) -> None:
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    for width, precision in _PRINTF_SPEC.findall(text):
        for number in (width, precision):
            if number == "*":
                raise ScriptLimitExceeded("'*' widths in % formatting are not supported")
            if number and (len(number) > 6 or int(number) > MAX_FORMAT_WIDTH):
                raise ScriptLimitExceeded(f"format width {number} exceeds the limit of {MAX_FORMAT_WIDTH}")


def _guarded_mod(left: Any, right: Any) -> Any:
    """Apply ``%``, refusing printf formats whose width would build a huge string."""
    if isinstance(left, _TEXT_TYPES) and (b"%" if isinstance(left, bytes) else "%") in left:
        _refuse_wide_printf(left)
    return left % right


_CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}


def _guarded_format(value: Any, conversion: int, spec: str) -> str:
    """Format an f-string field that has a format spec, refusing huge widths.

    ``f"{x:>999999999}"`` would otherwise allocate a gigabyte.
    """
    for number in _DIGIT_RUN.findall(spec):
        if len(number) > 6 or int(number) > MAX_FORMAT_WIDTH:
            raise ScriptLimitExceeded(f"format width {number} exceeds the limit of {MAX_FORMAT_WIDTH}")
    if conversion in _CONVERSIONS:
        value = _CONVERSIONS[conversion](value)
    return format(value, spec)


_OPERATOR_GUARDS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": _guarded_add,
    "*=": _guarded_mul,
    "**=": _guarded_pow,
    "<<=": _guarded_lshift,
    "%=": _guarded_mod,
}
_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


def _guarded_inplace(op: str, target: Any, value: Any) -> Any:
    """Apply an augmented assignment (``x += v``) with the same size checks as the operator.

    Lists keep their in-place behaviour (``l += [1]`` extends the list others hold).
    """
    guard = _OPERATOR_GUARDS.get(op)
    if guard is not None:
        if isinstance(target, list):
            # Run the check on the operands only; the list is then changed in place.
            if op == "+=" and isinstance(value, Sized):
                _refuse_length(target, len(target) + len(value))
            elif op == "*=" and isinstance(value, int) and value > 0:
                _refuse_length(target, len(target) * value)
        else:
            return guard(target, value)
    return _INPLACE_OPERATORS[op](target, value)


def _guarded_range(*args: int) -> range:
    """Build a range, refusing more than MAX_ITEMS items (``list(range(10**10))``)."""
    result = range(*args)
    try:
        length = len(result)
    except OverflowError:
        length = MAX_ITEMS + 1
    if length > MAX_ITEMS:
        raise ScriptLimitExceeded(f"a range of more than {MAX_ITEMS} items is not allowed")
    return result


def _guarded_sum(iterable: Any, /, start: Any = 0) -> Any:
    """Sum numbers; refuse other start values, since summing lists is quadratic and unbounded."""
    if not isinstance(start, (int, float, complex, timedelta)):
        raise TypeError("sum() only adds numbers and timedeltas in diagram scripts")
    return sum(iterable, start)


def _guarded_round(number: Any, ndigits: int | None = None) -> Any:
    """Round, refusing huge ``ndigits``: ``round(5, -10**9)`` computes 10**(10**9)."""
    if ndigits is None:
        return round(number)
    if isinstance(ndigits, int) and abs(ndigits) > MAX_FORMAT_WIDTH:
        raise ScriptLimitExceeded(f"round() to {ndigits} digits is not allowed")
    return round(number, ndigits)


# --- attribute, item, iteration and write guards -----------------------------------

_MISSING = object()

# Names refused on every object: the frame/code attributes RestrictedPython lists, the
# str.format family (format strings can reach any attribute: "{0.__class__}") and mro(),
# which hands out the class hierarchy.
_BLOCKED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | {"format", "format_map", "mro"}


def _estimate_pad(text: Any, width: Any, *args: Any) -> int:
    return width if isinstance(width, int) else 0


def _estimate_expandtabs(text: Any, tabsize: Any = 8) -> int:
    tab = b"\t" if isinstance(text, bytes) else "\t"
    return len(text) + text.count(tab) * (tabsize if isinstance(tabsize, int) and tabsize > 0 else 0)


def _estimate_replace(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, _TEXT_TYPES) or not isinstance(new, _TEXT_TYPES):
        return len(text)
    occurrences = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(len(new) - len(old), 0)


def _estimate_translate(text: Any, table: Any) -> int:
    if isinstance(text, bytes):
        return len(text)  # bytes tables map one byte to one byte
    if isinstance(table, dict):
        values = table.values()
    elif isinstance(table, (list, tuple)):
        values = table
    else:
        values = ()
    longest = max((len(v) for v in values if isinstance(v, str)), default=1)
    return len(text) * max(longest, 1)


_TEXT_ESTIMATORS: dict[str, Callable[..., int]] = {
    "ljust": _estimate_pad,
    "rjust": _estimate_pad,
    "center": _estimate_pad,
    "zfill": _estimate_pad,
    "expandtabs": _estimate_expandtabs,
    "replace": _estimate_replace,
    "translate": _estimate_translate,
}
# Methods that can multiply the size of their input in a single C call.
_AMPLIFYING_METHODS = frozenset(_TEXT_ESTIMATORS) | {"join", "extend", "to_bytes", "from_bytes"}


def _checked_method(obj: Any, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a bound method that can amplify its input so the result size is checked first."""
    if name in _TEXT_ESTIMATORS and isinstance(obj, _TEXT_TYPES):
        estimate = _TEXT_ESTIMATORS[name]

        def checked(*args: Any, **kwargs: Any) -> Any:
            _refuse_length(obj, estimate(obj, *args, **kwargs))
            return method(*args, **kwargs)

        return checked
    if name == "join" and isinstance(obj, _TEXT_TYPES):

        def checked_join(iterable: Any) -> Any:
            items = list(iterable)
            total = len(obj) * max(len(items) - 1, 0)
            total += sum(len(item) for item in items if isinstance(item, _TEXT_TYPES))
            _refuse_length(obj, total)
            return method(items)

        return checked_join
    if name == "extend" and isinstance(obj, list):

        def checked_extend(iterable: Any) -> None:
            items = iterable if isinstance(iterable, Sized) else list(iterable)
            _refuse_length(obj, len(obj) + len(items))
            method(items)

        return checked_extend
    if name == "to_bytes" and isinstance(obj, int):

        def checked_to_bytes(length: Any = 1, *args: Any, **kwargs: Any) -> bytes:
            if isinstance(length, int):
                _refuse_length(b"", length)
            return method(length, *args, **kwargs)

        return checked_to_bytes
    if name == "from_bytes":

        def checked_from_bytes(data: Any, *args: Any, **kwargs: Any) -> int:
            items = data if isinstance(data, Sized) else list(data)
            _refuse_int_bits(len(items) * 8)
            return method(items, *args, **kwargs)

        return checked_from_bytes
    return method


def _guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """Read an attribute for diagram code; refuse private, frame and formatting attributes.

    RestrictedPython already refuses ``x._y`` at compile time; this runtime check is the
    second line for names that arrive as strings, and it keeps modules unreachable even
    if a helper exposes one by accident.
    """
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in _BLOCKED_ATTRIBUTES:
        hint = "; use an f-string" if name in ("format", "format_map") else ""
        raise AttributeError(f'attribute "{name}" is not available in diagram scripts{hint}')
    if isinstance(obj, ModuleType):
        raise AttributeError("modules are not available in diagram scripts")
    if name in _AMPLIFYING_METHODS and isinstance(obj, type) and name != "from_bytes":
        # str.ljust(s, n) would bypass the size check applied to s.ljust(n).
        raise AttributeError(f'use the method on a value, not "{obj.__name__}.{name}"')
    value = getattr(obj, name) if default is _MISSING else getattr(obj, name, default)
    if isinstance(value, ModuleType):
        raise AttributeError(f'attribute "{name}" is a module, which diagram scripts may not use')
    if name in _AMPLIFYING_METHODS:
        return _checked_method(obj, name, value)
    return value


def _guarded_getitem(obj: Any, key: Any) -> Any:
    """Subscript without further checks.

    Scripts only reach plain data, helpers and values those return; none of them hides
    anything behind ``[]`` that attribute access would not already refuse.
    """
    return obj[key]


def _guarded_getiter(obj: Any) -> Any:
    """Iterate without further checks; the deadline check in loop bodies bounds the time."""
    return obj


def _guarded_write(obj: Any) -> Any:
    """Allow item writes (``d[k] = v``) on dicts and lists only.

    Scripts build plain data; refusing everything else keeps them from changing helper
    classes, functions or objects handed in by the application.
    """
    if type(obj) is dict or type(obj) is list:
        return obj
    raise TypeError(f"diagram scripts may not modify {type(obj).__name__} objects")


def _guarded_augitem(obj: Any, key: Any, op: str, value: Any) -> None:
    """Run ``obj[key] op= value``; RestrictedPython refuses this form outright."""
    target = _guarded_write(obj)
    target[key] = _guarded_inplace(op, obj[key], value)


def _guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)``; RestrictedPython routes star-argument calls here."""
    return func(*args, **kwargs)


class _PrintSink:
    """Collect print() output up to MAX_PRINT_LENGTH so a printing loop cannot fill memory."""

    def __init__(self, _getattr_: Any = None):
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        room = MAX_PRINT_LENGTH - self._size
        if room > 0:
            piece = text[:room]
            self._parts.append(piece)
            self._size += len(piece)

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        kwargs["file"] = self  # never a file object from the script
        print(*objects, **kwargs)

    def __call__(self) -> str:
        return "".join(self._parts)


# --- builtins and helpers ----------------------------------------------------------

_LEFT_OUT_BUILTINS = {
    "__build_class__",  # class definitions are refused
    "_getattr_",
    "setattr",
    "delattr",
    # Raising these would bypass SpiffWorkflow's `except Exception` and skip the ERROR state.
    "BaseException",
    "SystemExit",
    "KeyboardInterrupt",
    "GeneratorExit",
}

# C code such as date.today() or strftime() imports "time" through the __import__ of the
# calling frame's builtins, i.e. this dict. Scripts can neither name __import__ nor use the
# import statement, so this hook only ever serves the interpreter's own imports.
_INTERNAL_IMPORTS = frozenset({"time", "_strptime"})


def _internal_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    if level == 0 and name in _INTERNAL_IMPORTS:
        return builtins.__import__(name, globals, locals, fromlist, level)
    raise ImportError("imports are not available in diagram scripts")


_BUILTINS: dict[str, Any] = {k: v for k, v in safe_builtins.items() if k not in _LEFT_OUT_BUILTINS}
_BUILTINS.update(
    {
        "__import__": _internal_import,
        # `except BaseException:` keeps working, but scripts can only raise Exceptions.
        "BaseException": Exception,
        "dict": dict,
        "list": list,
        "tuple": tuple,
        "set": set,
        "min": min,
        "max": max,
        "sum": _guarded_sum,
        "any": any,
        "all": all,
        "enumerate": enumerate,
        "sorted": sorted,
        "reversed": reversed,
        "map": map,
        "filter": filter,
        "zip": zip,
        "round": _guarded_round,
        "abs": abs,
        "len": len,
        "str": str,
        "int": int,
        "float": float,
        "bool": bool,
        "isinstance": isinstance,
        "range": _guarded_range,
        "pow": _guarded_pow,
    }
)

# Guard functions the compiled code calls by name; they are put last into the globals so
# task data can never shadow them.
_GUARDS: dict[str, Any] = {
    "__builtins__": _BUILTINS,
    "_getattr_": _guarded_getattr,
    "_getitem_": _guarded_getitem,
    "_getiter_": _guarded_getiter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": _guarded_write,
    "_inplacevar_": _guarded_inplace,
    "_apply_": _guarded_apply,
    "_print_": _PrintSink,
    "_add_": _guarded_add,
    "_mul_": _guarded_mul,
    "_pow_": _guarded_pow,
    "_lshift_": _guarded_lshift,
    "_mod_": _guarded_mod,
    "_format_": _guarded_format,
    "_augitem_": _guarded_augitem,
}
_DEADLINE_NAME = "_deadline_"
# Names the runtime adds to a script's globals; `_print` is created by print() support.
_RUNTIME_NAMES = frozenset(_GUARDS) | {_DEADLINE_NAME, "_print"}


def _default_clock() -> datetime:
    # One source of "now" for scripts, timers and services (tests control it there).
    return app_clock.now()


_clock: Callable[[], datetime] = _default_clock


def set_clock(fn: Callable[[], datetime] | None) -> None:
    """Make ``now_utc()`` read ``fn`` (None restores the real clock).

    Tests and the application's controllable clock hook in here, so that deadlines
    computed by scripts agree with the timers' notion of now.
    """
    global _clock
    _clock = fn if fn is not None else _default_clock


def now_utc() -> datetime:
    """Return the current time as an aware UTC datetime, from the clock set by set_clock()."""
    value = _clock()
    if value.tzinfo is None:
        raise ValueError("the clock must return an aware datetime")
    return value.astimezone(UTC)


def iso_days(n: int) -> str:
    """Return the ISO-8601 duration of ``n`` days ("P15D"), the form timer durations take."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"iso_days() needs a whole number of days >= 0, got {n!r}")
    return f"P{n}D"


def add_days(value: str | date | datetime, n: int | float) -> str | date | datetime:
    """Return ``value`` moved by ``n`` days, as the same kind of value it was given.

    An ISO-8601 string gives back a string, so the result can be stored in task data or
    used as a timer date; "YYYY-MM-DD" stays a date, anything longer is read as a datetime.
    """
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        raise TypeError(f"add_days() needs a number of days, got {n!r}")
    delta = timedelta(days=n)
    if isinstance(value, (date, datetime)):
        return value + delta
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return (date.fromisoformat(text) + delta).isoformat()
        return (datetime.fromisoformat(text) + delta).isoformat()
    raise TypeError(f"add_days() needs an ISO-8601 string, date or datetime, got {type(value).__name__}")


#: Helpers every restricted environment offers, all plain functions or classes.
DEFAULT_HELPERS: dict[str, Any] = {
    "timedelta": timedelta,
    "date": date,
    "datetime": datetime,
    "now_utc": now_utc,
    "iso_days": iso_days,
    "add_days": add_days,
}


# --- compile-time policy -----------------------------------------------------------

_BINOP_GUARDS: dict[type[ast.operator], str] = {
    ast.Add: "_add_",
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",
}


def _located(new: Any, old: ast.AST) -> Any:
    ast.copy_location(new, old)
    return ast.fix_missing_locations(new)


def _call(name: str, args: list[ast.expr], where: ast.AST) -> ast.Call:
    return _located(ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[]), where)


class _DiagramPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus size guards, deadline checks and a few refusals.

    Generated names start with "_" and are added after the children were visited, so the
    name checks never see them and scripts can never write them.
    """

    def _deadline_stmt(self, where: ast.AST) -> ast.Expr:
        return _located(ast.Expr(_call(_DEADLINE_NAME, [], where)), where)

    def visit_Import(self, node: ast.Import) -> ast.AST:
        self.error(node, "import statements are not allowed; use the helpers the engine provides")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        self.error(node, "import statements are not allowed; use the helpers the engine provides")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed; use dicts and lists")
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = super().visit_BinOp(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        return _call(guard, [node.left, node.right], node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        if not isinstance(node.target, ast.Subscript):
            return super().visit_AugAssign(node)
        # `d["k"] += v` is common in scripts; RestrictedPython refuses it, so route it
        # through one call that applies the write guard and the operator checks.
        target = node.target
        args = [
            self.visit(target.value),
            self.visit(target.slice),
            ast.Constant(IOPERATOR_TO_STR[type(node.op)]),
            self.visit(node.value),
        ]
        return _located(ast.Expr(_call("_augitem_", args, node)), node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node = super().visit_FormattedValue(node)
        if node.format_spec is None:
            return node
        call = _call("_format_", [node.value, ast.Constant(node.conversion), node.format_spec], node)
        return _located(ast.FormattedValue(value=call, conversion=-1, format_spec=None), node)

    def visit_While(self, node: ast.While) -> ast.AST:
        node = super().visit_While(node)
        node.body.insert(0, self._deadline_stmt(node))
        return node

    def visit_For(self, node: ast.For) -> ast.AST:
        node = super().visit_For(node)
        node.body.insert(0, self._deadline_stmt(node))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node = super().visit_FunctionDef(node)
        node.body.insert(0, self._deadline_stmt(node))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node = super().visit_Lambda(node)
        # The deadline function returns True, so `True and body` is the body's value.
        node.body = _located(ast.BoolOp(ast.And(), [_call(_DEADLINE_NAME, [], node), node.body]), node)
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        node = super().visit_comprehension(node)
        node.ifs.insert(0, _call(_DEADLINE_NAME, [], node.iter))
        return node


_ERROR_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


def _policy_refusal(errors: tuple[str, ...]) -> tuple[int, str]:
    """Turn RestrictedPython's "Line N: message" strings into a line number and one message."""
    lines = []
    messages = []
    for error in errors:
        match = _ERROR_LINE.match(error)
        if match:
            lineno = int(match.group(1)) if match.group(1).isdigit() else 1
            lines.append(lineno)
            messages.append(f"line {lineno}: {match.group(2)}")
        else:
            messages.append(error)
    return (lines[0] if lines else 1), "; ".join(messages)


@functools.lru_cache(maxsize=2048)
def _compile_cached(source: str, mode: str) -> tuple[CodeType | None, tuple[int, str, int | None, str | None]]:
    """Compile once per (source, mode); return the code or the details of the refusal.

    Refusals are cached as data, not exceptions, so a broken condition evaluated on every
    step does not pay the compile cost again and no traceback is shared between callers.
    """
    try:
        tree = ast.parse(source, _FILENAME, mode)
    except SyntaxError as exc:
        return None, (exc.lineno or 1, exc.msg, exc.offset, exc.text)
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return None, (1, str(exc) or type(exc).__name__, None, None)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(tree, _FILENAME, policy=_DiagramPolicy)
    except SyntaxError as exc:  # e.g. `return` outside a function, found by compile()
        return None, (exc.lineno or 1, exc.msg, exc.offset, exc.text)
    except (RecursionError, MemoryError) as exc:
        return None, (1, f"code is too deeply nested ({type(exc).__name__})", None, None)
    if result.errors:
        lineno, message = _policy_refusal(tuple(result.errors))
        lines = source.splitlines()
        text = lines[lineno - 1] if 0 < lineno <= len(lines) else None
        return None, (lineno, message, None, text)
    return result.code, (0, "", None, None)


def _normalise(source: str, mode: str) -> str:
    if not isinstance(source, str):
        raise TypeError(f"diagram code must be a string, not {type(source).__name__}")
    # Conditions in BPMN XML often carry the surrounding newlines and indentation.
    return source.strip() if mode == "eval" else source


def compile_restricted_code(source: str, mode: str) -> CodeType:
    """Return the restricted code object for ``source`` ("eval" or "exec"), from the cache.

    Raises SyntaxError with an integer ``lineno`` for both Python syntax errors and code
    the restrictions refuse: SpiffWorkflow reads ``lineno`` from a SyntaxError to name the
    failing line and crashes with TypeError when it is missing.
    """
    if mode not in ("eval", "exec"):
        raise ValueError(f"mode must be 'eval' or 'exec', not {mode!r}")
    code, (lineno, message, offset, text) = _compile_cached(_normalise(source, mode), mode)
    if code is None:
        raise SyntaxError(message, (_FILENAME, lineno, offset, text))
    return code


def _check(source: str, mode: str) -> None:
    try:
        compile_restricted_code(source, mode)
    except SyntaxError as exc:
        lineno = exc.lineno or 1
        message = exc.msg if exc.msg.startswith("line ") else f"line {lineno}: {exc.msg}"
        raise ScriptRejected(message, lineno) from exc


def check_expression(source: str) -> None:
    """Raise ScriptRejected if ``source`` is not an expression the engine would evaluate.

    Diagram validation calls this for gateway conditions, timer expressions and DMN cells
    so that a refused expression is reported at upload time, not when a case reaches it.
    """
    _check(source, "eval")


def check_script(source: str) -> None:
    """Raise ScriptRejected if ``source`` is not a script the engine would execute.

    Diagram validation calls this for script tasks and pre/post scripts.
    """
    _check(source, "exec")


# --- the environment ---------------------------------------------------------------


def _make_deadline(budget: float) -> Callable[[], bool]:
    """Return the check that compiled loops call; it raises once ``budget`` seconds passed.

    Once the deadline passed every later check raises again, so a script that catches
    ScriptTimeout (even with `except BaseException`) is stopped at its next loop turn.
    """
    limit = time.monotonic() + budget

    def deadline() -> bool:
        if time.monotonic() > limit:
            raise ScriptTimeout(f"diagram code ran longer than its {budget:g} s budget")
        return True

    return deadline


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment that runs diagram code under restrictions.

    Same data semantics as SpiffWorkflow's TaskDataEnvironment: expressions see the task
    data as globals, and a script's top-level assignments and ``del`` change the task data,
    while helpers and functions it defines are removed afterwards.
    """

    def __init__(self, helpers: dict[str, Any] | None = None, time_budget: float = DEFAULT_TIME_BUDGET):
        merged = dict(DEFAULT_HELPERS)
        merged.update(helpers or {})
        for name, value in merged.items():
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"helper name {name!r} must be an identifier not starting with '_'")
            # A module (or anything holding module attributes) reachable from a script
            # is a full escape; callables are checked by the attribute guard instead.
            if isinstance(value, ModuleType) or not callable(value):
                raise TypeError(f"helper {name!r} must be a function or class, not {type(value).__name__}")
        if not time_budget > 0:
            raise ValueError("time_budget must be positive")
        super().__init__(merged)
        self.time_budget = float(time_budget)

    def _runtime_names(self) -> dict[str, Any]:
        names = dict(_GUARDS)
        names[_DEADLINE_NAME] = _make_deadline(self.time_budget)
        return names

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        """Evaluate a condition or expression against the task data."""
        code = compile_restricted_code(expression, "eval")
        scope = dict(self.globals)
        scope.update(external_context or {})
        scope.update(context)  # task data wins over helpers, as in TaskDataEnvironment
        scope.update(self._runtime_names())  # guards win over everything
        return eval(code, scope)  # noqa: S307 - restricted code object, guarded globals

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        """Run a script with the task data as its globals and return True."""
        code = compile_restricted_code(script, "exec")
        external_context = external_context or {}
        self._check_for_overwrite(context, external_context)
        context.update(self.globals)
        context.update(external_context)
        context.update(self._runtime_names())
        try:
            exec(code, context)  # noqa: S102 - restricted code object, guarded globals
        except Exception as exc:
            # SpiffWorkflow builds its message with `":" + err.args[0]` and fails with
            # TypeError on KeyError(1) or ValueError(5); the same exception object is
            # re-raised so its traceback still points at the script line.
            if exc.args and not isinstance(exc.args[0], str):
                exc.args = (repr(exc.args[0]) if isinstance(exc, KeyError) else str(exc.args[0]), *exc.args[1:])
            raise
        finally:
            self._remove_globals_and_functions_from_context(context, external_context)
        return True

    def _check_for_overwrite(self, context: dict, external_context: dict) -> None:
        """Fail fast on task data named like a helper or a guard.

        Otherwise the helper would silently replace the data (or the data the helper),
        which makes for undecipherable script errors.
        """
        clashes = (
            set(context) & set(self.globals)
            | set(context) & set(external_context)
            | set(context) & _RUNTIME_NAMES
        )
        if clashes:
            raise ValueError(
                "task data uses names reserved for script helpers; rename these fields: "
                + ", ".join(sorted(clashes))
            )

    def _remove_globals_and_functions_from_context(self, context: dict, external_context: dict) -> None:
        """Drop helpers, guards and callables so only data is left in the task data."""
        for key in list(context):
            if (
                key in _RUNTIME_NAMES
                or key in self.globals
                or key in external_context
                or callable(context[key])
            ):
                del context[key]


#: "process" runs diagram code in worker processes (see app.engine.sandbox) unless an expression
#: is provably cheap; "inline" runs everything in this process, for development only.
ISOLATION_MODES = ("process", "inline")
DEFAULT_ISOLATION = "process"


def make_environment(helpers: dict[str, Any] | None = None, time_budget: float = DEFAULT_TIME_BUDGET,
                     isolation: str | None = None, workers: int | None = None,
                     memory_limit_mb: int | None = None, kill_grace: float | None = None) -> RestrictedEnvironment:
    """Return the script environment for ``isolation`` ("process", the default, or "inline").

    ``workers`` and ``memory_limit_mb`` choose the shared worker pool; ``kill_grace`` is how
    long past ``time_budget`` a worker may run before it is killed.
    """
    isolation = isolation or DEFAULT_ISOLATION
    if isolation not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATION_MODES)}, not {isolation!r}")
    if isolation == "inline":
        return RestrictedEnvironment(helpers, time_budget)
    from app.engine import sandbox

    pool = sandbox.get_pool(workers or sandbox.DEFAULT_WORKERS, memory_limit_mb or sandbox.DEFAULT_MEMORY_LIMIT_MB)
    grace = sandbox.DEFAULT_KILL_GRACE if kill_grace is None else kill_grace
    return sandbox.IsolatedEnvironment(helpers, time_budget, pool=pool, kill_grace=grace)


def create_script_engine(helpers: dict[str, Any] | None = None, time_budget: float = DEFAULT_TIME_BUDGET,
                         isolation: str | None = None, workers: int | None = None,
                         memory_limit_mb: int | None = None, kill_grace: float | None = None) -> PythonScriptEngine:
    """Return a SpiffWorkflow script engine that runs diagram code restricted.

    ``helpers`` adds functions or classes to (or replaces) DEFAULT_HELPERS; ``time_budget``
    is the limit in seconds for each single evaluation or script. ``isolation`` and the
    rest: see :func:`make_environment`.
    """
    return PythonScriptEngine(environment=make_environment(
        helpers, time_budget, isolation, workers, memory_limit_mb, kill_grace))
