"""Diagram code in worker processes: the boundary against a malicious diagram.

The in-process layer (:mod:`app.engine.scripting`: RestrictedPython, size guards, deadline
checks in loops) stops accidents, but it cannot interrupt a loop that runs entirely in C
(``sum(map(sum, [[1] * 10**6] * 10**6))``) and RestrictedPython has had escape advisories.
:class:`IsolatedEnvironment` therefore sends diagram code to a small pool of worker processes
that apply the same restricted compile and guards, under a memory cap, while the caller waits
with a wall-clock deadline and kills the worker (SIGKILL) when it passes.

Design points, each for a reason:

* Workers come from multiprocessing's ``forkserver``: the web app and the scheduler are
  threaded, and forking a threaded process can copy a lock held by another thread. The fork
  server preloads this module, so a respawn after a kill is a fork, not an interpreter start.
* The memory cap is ``RLIMIT_DATA`` (heap and private anonymous mappings), not ``RLIMIT_AS``:
  address space also counts shared libraries and reserved-but-unused regions, which vary with
  the build and the imports, so an AS cap is either loose or breaks innocent imports; the data
  limit measures what a script can actually allocate. A refused allocation is a MemoryError in
  the worker (reported as :class:`ScriptLimitExceeded`, and the worker is replaced); a worker
  that dies for any reason is reported the same way.
* The worker is untrusted once diagram code has run in it. Its reply is unpickled with an
  allowlist of plain data classes (no code can be named), capped in bytes, and the result is
  walked with a budget so that shared references (``[x] * 10**6`` of a big string) cannot
  expand into gigabytes when the case is saved as JSON. Exceptions come back as a class name
  and plain arguments and are rebuilt from builtins only.
* Helpers are sent by reference (module and name, as pickle does for functions), and the state
  they read in the parent (the clock, the holiday calendar) is sent with each call when it
  changed, so helpers give the same results as in process.
* A worker also arms ``SIGALRM`` for each evaluation: should the parent die without killing
  it, the default action of the signal ends a worker stuck in C.

Expressions that are provably cheap stay in process (see :func:`runs_inline`): gateway
conditions and timer expressions run on every step, and the timer burst cannot afford a
round trip for each.
"""
from __future__ import annotations

import ast
import atexit
import builtins
import datetime as _dt
import decimal
import functools
import hashlib
import io
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import signal
import socket
import struct
import threading
import time
import traceback
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

from app import clock as app_clock
from app.engine import scripting
from app.engine.scripting import (
    DEFAULT_TIME_BUDGET,
    RestrictedEnvironment,
    ScriptLimitExceeded,
    ScriptRejected,
    ScriptTimeout,
    compile_restricted_code,
)

__all__ = [
    "DEFAULT_KILL_GRACE",
    "DEFAULT_MEMORY_LIMIT_MB",
    "DEFAULT_WORKERS",
    "IsolatedEnvironment",
    "SandboxPool",
    "get_pool",
    "runs_inline",
    "share_with_workers",
    "shutdown",
]

DEFAULT_WORKERS = 2
#: Data-segment cap of a worker in MiB. A warm worker uses about 65 MiB of it (see bench/sandbox.py).
DEFAULT_MEMORY_LIMIT_MB = 256
#: Seconds past the time budget before a worker is killed: a pure-Python loop stops itself at the
#: budget (the inserted deadline check) and keeps its worker; only C-level loops reach the kill.
DEFAULT_KILL_GRACE = 0.5
#: How long a caller waits for a free worker before the evaluation fails.
DEFAULT_ACQUIRE_TIMEOUT = 10.0
#: Largest reply a worker may send (pickled bytes), and the expanded size a result may have
#: (items plus characters/bytes, counting a shared object once per reference).
MAX_REPLY_BYTES = 64 * 1024 * 1024
MAX_RESULT_SIZE = 64 * 1024 * 1024

_HEADER = struct.Struct("!Q")
_START_METHOD = "forkserver"


# --- which code stays in process -------------------------------------------------------------

#: Builtins an in-process expression may call; each costs time linear in its arguments and
#: returns at most a constant factor more than it was given.
INLINE_BUILTINS = frozenset({"len", "str", "int", "float", "bool", "abs", "round", "min", "max", "isinstance"})
#: Methods an in-process expression may call on data: read-only, linear, non-amplifying.
INLINE_METHODS = frozenset({
    "get", "keys", "values", "items", "lower", "upper", "strip", "lstrip", "rstrip",
    "startswith", "endswith", "isdigit", "isoformat", "date",
})
_INLINE_BINOPS = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.BitOr, ast.BitAnd, ast.BitXor, ast.RShift)
_INLINE_UNARY = (ast.Not, ast.USub, ast.UAdd, ast.Invert)
#: Larger expressions go to a worker: the cost bound below grows with the number of nodes.
MAX_INLINE_NODES = 200


class _InlineCheck(ast.NodeVisitor):
    def __init__(self, callable_names: frozenset[str]):
        self.callable_names = callable_names
        self.nodes = 0

    def generic_visit(self, node: ast.AST) -> None:
        raise _NotInline(type(node).__name__)

    def _children(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def visit(self, node: ast.AST) -> None:
        self.nodes += 1
        if self.nodes > MAX_INLINE_NODES:
            raise _NotInline("too large")
        super().visit(node)

    def visit_Expression(self, node: ast.Expression) -> None:
        self.visit(node.body)

    def visit_Module(self, node: ast.Module) -> None:
        # A script qualifies when it is only ``name = <inline expression>`` statements, none of
        # which reads a name an earlier one assigned: else ``x = x + x`` repeated would double
        # its data at every line; this way each value is bounded as a lone expression's is.
        assigned: set[str] = set()
        for statement in node.body:
            if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)):
                raise _NotInline("statement")
            target = statement.targets[0].id
            if target.startswith("_"):
                raise _NotInline("name")
            if {n.id for n in ast.walk(statement.value) if isinstance(n, ast.Name)} & assigned:
                raise _NotInline("reads an earlier statement's result")
            self.nodes += 1
            self.visit(statement.value)
            assigned.add(target)

    def visit_Constant(self, node: ast.Constant) -> None:
        pass

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load) or node.id.startswith("_"):
            raise _NotInline("name")

    def visit_Load(self, node: ast.AST) -> None:
        pass

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            raise _NotInline("store")
        self.visit(node.value)
        self.visit(node.slice)

    def visit_Slice(self, node: ast.Slice) -> None:
        self._children(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        # Every comparison operator (``in`` included) is linear in its operands.
        self.visit(node.left)
        for comparator in node.comparators:
            self.visit(comparator)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for value in node.values:
            self.visit(value)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if not isinstance(node.op, _INLINE_UNARY):
            raise _NotInline("unary operator")
        self.visit(node.operand)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not isinstance(node.op, _INLINE_BINOPS):
            raise _NotInline(type(node.op).__name__)
        self.visit(node.left)
        self.visit(node.right)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._children(node)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        self._elements(node.elts, node.ctx)

    def visit_List(self, node: ast.List) -> None:
        self._elements(node.elts, node.ctx)

    def visit_Set(self, node: ast.Set) -> None:
        self._elements(node.elts, ast.Load())

    def _elements(self, elements: list[ast.expr], ctx: ast.AST) -> None:
        if not isinstance(ctx, ast.Load):
            raise _NotInline("store")
        for element in elements:
            self.visit(element)  # Starred is refused by generic_visit

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # {**other}
                raise _NotInline("dict unpacking")
            self.visit(key)
            self.visit(value)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.callable_names:
            if node.keywords and func.id in INLINE_BUILTINS:
                raise _NotInline("keywords")  # min(key=...) would call whatever it is given
        elif isinstance(func, ast.Attribute) and func.attr in INLINE_METHODS:
            if node.keywords:
                raise _NotInline("keywords")
            self.visit(func.value)
        else:
            raise _NotInline("call")
        for arg in node.args:
            self.visit(arg)
        for keyword in node.keywords:
            if keyword.arg is None:  # f(**kwargs)
                raise _NotInline("keyword unpacking")
            self.visit(keyword.value)


class _NotInline(Exception):
    pass


@functools.lru_cache(maxsize=4096)
def _classify(source: str, mode: str, helper_names: frozenset[str]) -> bool:
    if mode not in ("eval", "exec"):
        return False
    try:
        tree = ast.parse(source.strip() if mode == "eval" else source, "<string>", mode)
        _InlineCheck(INLINE_BUILTINS | helper_names).visit(tree)
    except (_NotInline, SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def runs_inline(source: str, mode: str, helper_names: frozenset[str] = frozenset()) -> bool:
    """Whether diagram code may run in this process rather than in a worker.

    Expressions qualify, and scripts made only of ``name = <expression>`` lines none of which
    reads what an earlier line assigned; every expression built from a strict whitelist: constants, names,
    subscripts and slices, comparisons, ``and``/``or``/``not``, conditional expressions, tuple,
    list, set and dict displays, the operators ``+ - / // | & ^ >>``, calls to the helpers
    (``helper_names``) and to :data:`INLINE_BUILTINS`, and calls of the read-only methods in
    :data:`INLINE_METHODS`; at most :data:`MAX_INLINE_NODES` nodes.

    Why that is safe:

    * bounded time: there is no loop, comprehension, lambda or function definition, so every
      node runs once; each allowed operation and builtin costs at most linear (``min``/``max``:
      linear; comparisons: linear) time in the size of its operands; the helpers are reviewed
      application code with bounded work (``duration_of`` counts at most 999 days);
    * bounded memory: none of the allowed operations amplifies its operands (``*``, ``**``,
      ``<<``, ``%`` formatting, f-strings and ``format`` all go to a worker), so every value is
      at most the sum of the leaves below it: O(nodes x size of the task data);
    * no escape: no attribute is read except the listed method names (none starts with ``_``),
      keyword arguments reach only the helpers, so no callable is handed to a builtin that
      would call it; on top of that the code is still compiled by RestrictedPython with the
      same guards as in a worker.

    A non-scalar result is also checked for its expanded size before it is returned, as the
    worker's replies are, because a container may be stored into task data (DMN outputs).
    The classification is cached per (source, mode, helpers).
    """
    return _classify(source, mode, frozenset(helper_names))


# --- what may come back from a worker ----------------------------------------------------------

def _zoneinfo_unpickle(owner: Any, name: Any) -> Any:
    if owner is zoneinfo.ZoneInfo and name == "_unpickle":
        return zoneinfo.ZoneInfo._unpickle
    raise pickle.UnpicklingError("a sandbox reply may only look up ZoneInfo._unpickle")


#: Classes a worker's reply may name: plain data only, never anything callable with effects.
_REPLY_CLASSES: dict[tuple[str, str], Any] = {
    ("datetime", "datetime"): _dt.datetime,
    ("datetime", "date"): _dt.date,
    ("datetime", "time"): _dt.time,
    ("datetime", "timedelta"): _dt.timedelta,
    ("datetime", "timezone"): _dt.timezone,
    # A ZoneInfo pickles as getattr(ZoneInfo, "_unpickle")(key, ...): only that getattr is served.
    ("zoneinfo", "ZoneInfo"): zoneinfo.ZoneInfo,
    ("zoneinfo", "ZoneInfo._unpickle"): zoneinfo.ZoneInfo._unpickle,
    ("builtins", "getattr"): _zoneinfo_unpickle,
    ("decimal", "Decimal"): decimal.Decimal,
    ("uuid", "UUID"): uuid.UUID,
    ("uuid", "SafeUUID"): uuid.SafeUUID,
    ("builtins", "complex"): complex,
    ("builtins", "range"): range,
}
_SCALARS = (str, bytes, int, float, complex, bool, type(None), _dt.date, _dt.time, _dt.timedelta,
            _dt.tzinfo, decimal.Decimal, uuid.UUID, range)


class _ReplyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _REPLY_CLASSES[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"a sandbox reply may not name {module}.{name}") from None


def _loads_reply(payload: bytes) -> Any:
    return _ReplyUnpickler(io.BytesIO(payload)).load()


def _check_expanded_size(value: Any, limit: int = MAX_RESULT_SIZE) -> None:
    """Refuse a value whose expanded size (each reference counted) exceeds ``limit``.

    The walk stops as soon as the budget is spent, so it costs at most O(limit) even for a
    list holding one big string a million times; a cycle spends the budget too.
    """
    budget = limit
    stack = [value]
    while stack:
        item = stack.pop()
        budget -= 1
        if isinstance(item, (str, bytes, bytearray)):
            budget -= len(item)
        elif isinstance(item, int):
            budget -= item.bit_length() >> 3
        elif isinstance(item, dict):
            budget -= len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            budget -= len(item)
            stack.extend(item)
        elif isinstance(item, (type({}.keys()), type({}.values()), type({}.items()))):
            budget -= len(item)
            stack.extend(item)
        if budget < 0:
            raise ScriptLimitExceeded(
                f"diagram code produced a value larger than {limit} items and characters (shared parts counted each time)"
            )


_OWN_ERRORS = {cls.__name__: cls for cls in (ScriptTimeout, ScriptLimitExceeded, ScriptRejected)}


def _exception_class(name: str) -> type[Exception] | None:
    if name in _OWN_ERRORS:
        return _OWN_ERRORS[name]
    candidate = getattr(builtins, name, None)
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        return candidate
    return None


def _rebuild_exception(name: Any, args: Any) -> Exception:
    if not isinstance(name, str) or not isinstance(args, tuple):
        return ScriptLimitExceeded("the sandbox worker sent a malformed error")
    cls = _exception_class(name)
    if cls is not None:
        try:
            return cls(*args)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError wants five arguments
            pass
    message = ", ".join(str(a) for a in args)
    return RuntimeError(f"{name}: {message}" if message else name)


@functools.lru_cache(maxsize=256)
def _raiser(lineno: int) -> Any:
    # SpiffWorkflow names the failing script line from the traceback frame called "<string>".
    return compile("\n" * (lineno - 1) + "raise _error_", "<string>", "exec")


def _raise_at_line(error: Exception, lineno: int | None) -> None:
    if isinstance(lineno, int) and 0 < lineno < 100_000:
        try:
            exec(_raiser(lineno), {"__builtins__": {}, "_error_": error})  # noqa: S102 - constant code
        finally:
            del error
    raise error


# --- state the helpers read, shipped to the workers -------------------------------------------

_shared_state: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {}


def share_with_workers(name: str, capture: Callable[[], Any], restore: Callable[[Any], None]) -> None:
    """Keep a piece of this process's state in step with the workers (e.g. the holiday calendar).

    Before each evaluation ``capture()`` is called here; when its result is not the object a
    worker last received, it is pickled and the worker calls ``restore(value)`` (a module-level
    function, sent by reference) before running the code.
    """
    _shared_state[name] = (capture, restore)


def _capture_clocks() -> tuple[Any, Any]:
    """The parent's "now" for ``now_utc()`` (scripting clock) and for app.clock, fixed per call."""
    try:
        app_now: Any = app_clock.now()
    except Exception as exc:  # noqa: BLE001 - re-raised in the worker if a helper asks for the time
        app_now = exc
    if scripting._clock is scripting._default_clock:
        return app_now, app_now
    try:
        script_now: Any = scripting._clock()
    except Exception as exc:  # noqa: BLE001
        script_now = exc
    return script_now, app_now


def _fixed(value: Any) -> Callable[[], Any]:
    def now() -> Any:
        if isinstance(value, BaseException):
            raise value
        return value

    return now


# --- the worker side --------------------------------------------------------------------------


def _recv_frame_blocking(sock: socket.socket) -> bytes | None:
    header = _recv_exact(sock, _HEADER.size, None)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    payload = _recv_exact(sock, length, None)
    if payload is None:
        raise EOFError("connection closed inside a message")
    return payload


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
        count = sock.recv_into(view[got:])
        if count == 0:
            if got == 0:
                return None
            raise EOFError("connection closed inside a message")
        got += count
    return bytes(buffer)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    if len(payload) < 65536:
        sock.sendall(_HEADER.pack(len(payload)) + payload)
    else:
        sock.sendall(_HEADER.pack(len(payload)))
        sock.sendall(payload)


class _BoundedBuffer(io.BytesIO):
    def write(self, data: Any) -> int:
        if self.tell() + len(data) > MAX_REPLY_BYTES:
            raise ScriptLimitExceeded(f"diagram code produced more than {MAX_REPLY_BYTES} bytes of data")
        return super().write(data)


def _dump_reply(reply: tuple) -> bytes:
    buffer = _BoundedBuffer()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    # No memo: every reference is written out, so the byte cap bounds the expanded size, and
    # a cyclic value fails here instead of in the parent.
    pickler.fast = True
    pickler.dump(reply)
    return buffer.getvalue()


def _plain_args(exc: BaseException) -> tuple:
    return tuple(a if isinstance(a, (str, int, float, bool, type(None))) else repr(a)[:2000] for a in exc.args)


def _script_lineno(exc: BaseException) -> int | None:
    lineno = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<string>":
            lineno = frame.lineno
    return lineno


def _apply_limits(memory_limit: int) -> None:
    import resource

    if memory_limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (memory_limit, memory_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class _WorkerState:
    def __init__(self) -> None:
        self.helpers: dict[str, dict[str, Any]] = {}
        self.environments: dict[tuple[str, float], RestrictedEnvironment] = {}

    def environment(self, key: str, budget: float) -> RestrictedEnvironment:
        env = self.environments.get((key, budget))
        if env is None:
            env = RestrictedEnvironment(self.helpers[key], budget)
            self.environments[(key, budget)] = env
        return env


def _handle(state: _WorkerState, request: tuple) -> tuple:
    op, source, data, external, key, helpers_blob, updates, script_now, app_now, budget, alarm = request
    if helpers_blob is not None:
        state.helpers[key] = pickle.loads(helpers_blob)  # noqa: S301 - sent by the parent
    for restore, value in updates:
        restore(value)
    scripting._clock = _fixed(script_now)
    app_clock.set_clock(_fixed(app_now))
    env = state.environment(key, budget)
    # Backstop should the parent die without killing us: SIGALRM's default action ends the
    # process even inside a C loop (no Python handler is installed for it).
    signal.setitimer(signal.ITIMER_REAL, alarm)
    try:
        if op == "eval":
            return ("ok", env.evaluate(source, data, external), None)
        env.execute(source, data, external)
        return ("ok", True, data)
    except MemoryError:
        return ("memory", None, None)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as name and plain arguments
        return ("error", (type(exc).__name__, _plain_args(exc), _script_lineno(exc)), data if op == "exec" else None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _serve(sock: socket.socket, memory_limit: int) -> None:
    """Worker main loop: one request in, one reply out, until the parent closes the socket."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    _apply_limits(memory_limit)
    state = _WorkerState()
    sock.setblocking(True)
    while True:
        try:
            message = _recv_frame_blocking(sock)
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            reply = _handle(state, pickle.loads(message))  # noqa: S301 - sent by the parent
            try:
                payload = _dump_reply(reply)
            except MemoryError:
                payload = _dump_reply(("memory", None, None))
            except Exception as exc:  # noqa: BLE001 - unpicklable, cyclic or too large
                kind = ScriptLimitExceeded if isinstance(exc, ScriptLimitExceeded) else TypeError
                message_text = f"the result of diagram code cannot leave the sandbox: {exc}"
                payload = _dump_reply(("error", (kind.__name__, (message_text,), None), None))
        except MemoryError:
            payload = _dump_reply(("memory", None, None))
        try:
            _send_frame(sock, payload)
        except OSError:
            return


# --- the parent side --------------------------------------------------------------------------


class _Worker:
    def __init__(self, context: Any, memory_limit: int):
        parent_sock, child_sock = socket.socketpair()
        try:
            self.process = context.Process(target=_serve, args=(child_sock, memory_limit), daemon=True,
                                           name="diagram-sandbox")
            self.process.start()
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self.sock = parent_sock
        self.helper_keys: set[str] = set()
        self.state_sent: dict[str, Any] = {}

    def stop(self) -> int | None:
        """Kill the process (it holds no state worth saving) and reap it."""
        self.sock.close()
        try:
            if self.process.exitcode is None:
                self.process.kill()
            self.process.join(5)
            code = self.process.exitcode
            if code is not None:
                self.process.close()
            return code
        except ValueError:  # already closed
            return None


class SandboxPool:
    """Worker processes evaluating diagram code, one caller per worker at a time.

    Workers start on first use, up to ``size``; a caller waits at most ``acquire_timeout``
    seconds for a free one. Thread-safe.
    """

    def __init__(self, size: int = DEFAULT_WORKERS, memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
                 acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT):
        if size < 1:
            raise ValueError("a sandbox pool needs at least one worker")
        self.size = size
        self.memory_limit = int(memory_limit_mb) * 1024 * 1024
        self.acquire_timeout = acquire_timeout
        self._idle: list[_Worker] = []
        self._count = 0
        self._closed = False
        self._condition = threading.Condition()
        self._pid = os.getpid()
        self.kills = 0  # workers killed at a deadline or replaced after a memory failure

    # -- workers --------------------------------------------------------------------------------
    def _context(self) -> Any:
        context = multiprocessing.get_context(_START_METHOD)
        _ensure_preload(context)
        return context

    def _acquire(self) -> _Worker:
        deadline = time.monotonic() + self.acquire_timeout
        with self._condition:
            while True:
                if self._closed:
                    raise RuntimeError("the diagram sandbox was shut down")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.process.is_alive():
                        return worker
                    # Killed while idle (OOM killer, an operator): not the next case's fault.
                    worker.stop()
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ScriptTimeout(
                        f"all {self.size} diagram sandbox workers stayed busy for {self.acquire_timeout:g} s"
                    )
                self._condition.wait(remaining)
        try:
            return _Worker(self._context(), self.memory_limit)
        except BaseException:
            with self._condition:
                self._count -= 1
                self._condition.notify()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._condition:
            if self._closed:
                worker.stop()
                return
            self._idle.append(worker)
            self._condition.notify()

    def _discard(self, worker: _Worker) -> int | None:
        """Kill a worker and start its replacement, so the next caller finds a warm one."""
        code = worker.stop()
        self.kills += 1
        try:
            replacement = _Worker(self._context(), self.memory_limit)
        except Exception:  # noqa: BLE001 - the next caller starts one instead
            with self._condition:
                self._count -= 1
                self._condition.notify()
            return code
        self._release(replacement)
        return code

    def start(self) -> None:
        """Start every worker now rather than on first use (servers warm up at boot)."""
        workers = [self._acquire() for _ in range(self.size - len(self._idle))]
        for worker in workers:
            self._release(worker)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._condition.notify_all()
        for worker in idle:
            worker.stop()

    def abandon(self) -> None:
        """Forget the workers without touching them: they belong to the process we forked from."""
        with self._condition:
            self._closed = True
            for worker in self._idle:
                worker.sock.close()
            self._idle = []

    # -- one evaluation -------------------------------------------------------------------------
    def run(self, op: str, source: str, data: dict, external: dict, helpers_key: str, helpers_blob: bytes,
            time_budget: float, kill_after: float) -> tuple[Any, Any]:
        """Evaluate in a worker; return (result, data) or raise the error diagram code raised."""
        worker = self._acquire()
        started = time.monotonic()
        deadline = started + kill_after
        updates = []
        for name, (capture, restore) in _shared_state.items():
            value = capture()
            if worker.state_sent.get(name, _NOTHING) is not value:
                updates.append((name, restore, value))
        script_now, app_now = _capture_clocks()
        request = (
            op, source, data, external, helpers_key,
            None if helpers_key in worker.helper_keys else helpers_blob,
            [(restore, value) for _, restore, value in updates],
            script_now, app_now, time_budget, kill_after + 1.0,
        )
        try:
            message = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            self._release(worker)
            raise
        try:
            worker.sock.settimeout(kill_after)
            _send_frame(worker.sock, message)
            header = _recv_exact(worker.sock, _HEADER.size, deadline)
            if header is None:
                raise EOFError
            (length,) = _HEADER.unpack(header)
            if length > MAX_REPLY_BYTES:
                self._discard(worker)
                raise ScriptLimitExceeded(f"diagram code produced more than {MAX_REPLY_BYTES} bytes of data")
            payload = _recv_exact(worker.sock, length, deadline)
            if payload is None:
                raise EOFError
        except TimeoutError:
            self._discard(worker)
            raise ScriptTimeout(
                f"diagram code ran longer than its {time_budget:g} s budget; its worker process was killed "
                f"after {time.monotonic() - started:.2f} s"
            ) from None
        except (EOFError, OSError):
            code = self._discard(worker)
            raise ScriptLimitExceeded(
                f"the worker process running diagram code died before replying (exit code {code}); the code "
                f"may have exceeded the {self.memory_limit >> 20} MiB memory cap"
            ) from None
        try:
            reply = _loads_reply(payload)
            status, result, new_data = reply
            if new_data is not None and not isinstance(new_data, dict):
                raise ValueError("task data must be a dict")
            _check_expanded_size(result)
            _check_expanded_size(new_data)
        except ScriptLimitExceeded:
            self._discard(worker)
            raise
        except Exception as exc:  # noqa: BLE001 - a reply that is not plain data: distrust the worker
            self._discard(worker)
            raise ScriptLimitExceeded(f"the sandbox worker sent an unreadable reply ({exc})") from None
        worker.helper_keys.add(helpers_key)
        for name, _, value in updates:
            worker.state_sent[name] = value
        if status == "memory":
            self._discard(worker)  # its heap may stay bloated; start afresh
            raise ScriptLimitExceeded(f"diagram code exceeded the {self.memory_limit >> 20} MiB memory cap")
        self._release(worker)
        if status == "ok":
            return result, new_data
        if status != "error" or not isinstance(result, tuple) or len(result) != 3:
            raise ScriptLimitExceeded("the sandbox worker sent a malformed reply")
        name, args, lineno = result
        error = _rebuild_exception(name, args)
        error.sandbox_data = new_data  # what a failing script left, as in process
        _raise_at_line(error, lineno)
        raise AssertionError("unreachable")


_NOTHING = object()
_preload_lock = threading.Lock()
_preloaded = False


def _ensure_preload(context: Any) -> None:
    """Have the fork server import this module once, so each worker starts as a plain fork.

    "__main__" (multiprocessing's default) stays first: with it the fork server imports the main
    script once and the workers skip re-importing it. As with any multiprocessing start method
    other than fork, a main script must guard its work with ``if __name__ == "__main__"``.
    """
    global _preloaded
    with _preload_lock:
        if not _preloaded:
            context.set_forkserver_preload(["__main__", __name__])
            _preloaded = True


# --- pools shared by all engines of this process ---------------------------------------------

_pools: dict[tuple[int, int], SandboxPool] = {}
_pools_lock = threading.Lock()


def get_pool(size: int = DEFAULT_WORKERS, memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB) -> SandboxPool:
    """The process-wide pool for these settings (engines are cached; pools are shared)."""
    key = (int(size), int(memory_limit_mb))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool._closed:
            pool = _pools[key] = SandboxPool(*key)
        return pool


def shutdown() -> None:
    """Stop every worker and the fork server (app teardown, end of the test session, exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        if pool._pid == os.getpid():
            pool.close()
        else:
            pool.abandon()
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None and getattr(server, "_forkserver_pid", None) is not None:
        try:
            stop()
        except (OSError, ChildProcessError):
            pass


def _after_fork_in_child() -> None:
    # A process forked from one that used the sandbox (gunicorn --preload, a test's os.fork)
    # must not share its parent's workers, nor its fork server: multiprocessing would call
    # waitpid() on a process that is not its child.
    global _pools_lock, _preload_lock
    _pools_lock = threading.Lock()  # another thread of the parent may have held it at the fork
    _preload_lock = threading.Lock()
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.abandon()
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None:
        try:
            os.close(server._forkserver_alive_fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None
        server._forkserver_pid = None
        server._forkserver_address = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)


# --- the environment --------------------------------------------------------------------------


class IsolatedEnvironment(RestrictedEnvironment):
    """Restricted environment that runs diagram code in a worker process unless it is provably cheap.

    Same semantics as :class:`RestrictedEnvironment` (task data as globals; a script's top-level
    assignments and ``del`` change the task data; helpers and callables removed afterwards):
    the worker runs exactly that environment, and the resulting data replaces the caller's.
    """

    def __init__(self, helpers: dict[str, Any] | None = None, time_budget: float = DEFAULT_TIME_BUDGET,
                 pool: SandboxPool | None = None, kill_grace: float = DEFAULT_KILL_GRACE):
        super().__init__(helpers, time_budget)
        extra = dict(helpers or {})
        try:
            self._helpers_blob = pickle.dumps(extra, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(self._helpers_blob)  # noqa: S301 - our own bytes; proves they import by name
        except Exception as exc:
            raise TypeError(
                "helpers must be module-level functions or classes so worker processes can import them: "
                f"{exc}"
            ) from exc
        self._helpers_key = hashlib.sha256(self._helpers_blob).hexdigest()[:24]
        self._helper_names = frozenset(self.globals)
        self.pool = pool if pool is not None else get_pool()
        self.kill_after = self.time_budget + kill_grace

    def runs_inline(self, source: str, mode: str) -> bool:
        return runs_inline(source, mode, self._helper_names)

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        compile_restricted_code(expression, "eval")  # a SyntaxError surfaces here, as in process
        if self.runs_inline(expression, "eval"):
            result = super().evaluate(expression, context, external_context)
            if not isinstance(result, _SCALARS):
                _check_expanded_size(result)
            return result
        result, _ = self.pool.run("eval", expression, context, dict(external_context or {}),
                                  self._helpers_key, self._helpers_blob, self.time_budget, self.kill_after)
        return result

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        compile_restricted_code(script, "exec")
        if self.runs_inline(script, "exec"):
            super().execute(script, context, external_context)
            for value in context.values():
                if not isinstance(value, _SCALARS):
                    _check_expanded_size(value)
            return True
        external_context = dict(external_context or {})
        self._check_for_overwrite(context, external_context)
        try:
            _, data = self.pool.run("exec", script, context, external_context,
                                    self._helpers_key, self._helpers_blob, self.time_budget, self.kill_after)
        except Exception as exc:
            left = getattr(exc, "sandbox_data", None)
            if isinstance(left, dict):
                # In process, what a failing script assigned before the error stays in the data.
                context.clear()
                context.update(left)
            raise
        context.clear()
        context.update(data)
        return True
