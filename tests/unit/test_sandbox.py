"""Diagram code in worker processes: what only a separate process can stop, and what must not
change when code moves there. (Every behaviour of the restricted engine itself is run in both
isolation modes by test_scripting.py.)"""
from __future__ import annotations

import os
import pickle
import signal
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from app.cases import services as _services  # noqa: F401 - shares the holiday calendar with the workers
from app.engine import sandbox
from app.engine.sandbox import IsolatedEnvironment, SandboxPool, runs_inline
from app.engine.scripting import RestrictedEnvironment, ScriptLimitExceeded, ScriptTimeout
from app.scheduling import calendar

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
BUDGET = 0.3
C_LOOP = "sum(map(sum, [[1] * 10**6] * 10**6))"  # 10**12 additions, all inside C


@pytest.fixture
def pool():
    pool = SandboxPool(size=1, memory_limit_mb=128)
    yield pool
    pool.close()


@pytest.fixture
def env(pool):
    return IsolatedEnvironment(time_budget=BUDGET, pool=pool)


def worker_pid(pool):
    pool.start()
    return pool._idle[0].process.pid


def test_a_loop_inside_c_is_killed_and_its_worker_replaced(env, pool):
    first = worker_pid(pool)
    started = time.monotonic()
    with pytest.raises(ScriptTimeout, match="killed"):
        env.evaluate(C_LOOP, {})
    # Killed at budget + grace: the in-process deadline check would never have fired.
    assert time.monotonic() - started < BUDGET + sandbox.DEFAULT_KILL_GRACE + 2
    assert pool.kills == 1
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    assert worker_pid(pool) != first
    assert env.evaluate("a + 1", {"a": 41}) == 42
    assert env.evaluate("[x * 2 for x in a]", {"a": [1, 2]}) == [2, 4]


def test_a_python_loop_stops_at_its_budget_and_keeps_its_worker(env, pool):
    first = worker_pid(pool)
    with pytest.raises(ScriptTimeout):
        env.execute("while True:\n    pass", {})
    assert pool.kills == 0
    assert worker_pid(pool) == first


@pytest.mark.parametrize("script", [
    "x = [[0] * 1000 for i in range(1000000)]",  # 8 GB of references, built in a comprehension
    "x = ['a' * 10**6] * 1000",                   # one string referenced 1,000 times: 1 GB expanded
])
def test_memory_exhaustion_is_refused_and_the_data_untouched(env, pool, script):
    context = {"keep": 1}
    with pytest.raises(ScriptLimitExceeded):
        env.execute(script, context)
    assert context == {"keep": 1}
    assert pool.kills == 1
    assert env.evaluate("keep + 1", context) == 2


def test_a_worker_killed_while_idle_is_replaced_without_failing_the_next_call(env, pool):
    first = worker_pid(pool)
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)
    assert env.evaluate("'%s-%s' % (a, b)", {"a": 1, "b": 2}) == "1-2"
    assert worker_pid(pool) != first


def test_script_results_and_errors_are_the_same_as_in_process(env):
    inline = RestrictedEnvironment(time_budget=BUDGET)
    script = "total = sum(x['n'] for x in items)\nlabel = f'{total:05d}'\ndel items"
    for environment in (inline, env):
        context = {"items": [{"n": 3}, {"n": 4}]}
        environment.execute(script, context)
        assert context == {"total": 7, "label": "00007"}
    for environment in (inline, env):
        context = {"a": 1}
        with pytest.raises(ZeroDivisionError):
            environment.execute("b = 2\nc = a / 0", context)
        assert context == {"a": 1, "b": 2}, "what ran before the error stays, as in process"


def test_values_of_the_allowed_types_come_back_intact(env):
    moment = datetime(2026, 12, 6, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    context = {"when": moment, "amount": Decimal("12.50"), "ref": UUID(int=7), "day": date(2026, 1, 2)}
    env.execute("later = when.replace(hour=10)\nwho = [ref, amount * 2, day]", context)
    assert context["later"] == moment.replace(hour=10)
    assert context["later"].tzinfo == ZoneInfo("Asia/Shanghai")
    assert context["who"] == [UUID(int=7), Decimal("25.00"), date(2026, 1, 2)]


class Exploit:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_reply_may_only_name_plain_data_classes():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        sandbox._loads_reply(pickle.dumps(("ok", Exploit(), None)))
    with pytest.raises(pickle.UnpicklingError, match="ZoneInfo._unpickle"):
        sandbox._loads_reply(pickle.dumps(("ok", datetime.now, None)))  # getattr(datetime, "now")
    value = ("ok", [datetime(2026, 1, 1, tzinfo=UTC), Decimal(1), range(3)], None)
    assert sandbox._loads_reply(pickle.dumps(value)) == value


def test_shared_references_are_counted_each_time():
    big = "x" * 1000
    sandbox._check_expanded_size([big] * 100, limit=200_000)
    with pytest.raises(ScriptLimitExceeded):
        sandbox._check_expanded_size([big] * 1000, limit=200_000)
    nested = {"a": [[big] * 10] * 10}
    with pytest.raises(ScriptLimitExceeded):
        sandbox._check_expanded_size(nested, limit=50_000)
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(ScriptLimitExceeded):
        sandbox._check_expanded_size(cycle, limit=1_000)


def test_helpers_read_the_parents_calendar_and_clock(pool):
    env = IsolatedEnvironment({"duration_of": calendar.duration_of}, time_budget=BUDGET, pool=pool)
    before = calendar.current()
    try:
        # Friday 2026-12-04: three working days later is Wednesday, unless Monday is a holiday.
        from app import clock
        clock.set_clock(lambda: datetime(2026, 12, 4, 2, 0, tzinfo=UTC))
        assert env.evaluate("duration_of(spec)", {"spec": "3WD"}) == "P5D"
        assert env.execute("d = duration_of('3WD') + '/' + str(len(spec))", {"spec": "x"})
        calendar.install(calendar.WorkingCalendar(holidays=frozenset({date(2026, 12, 7)})))
        context = {"spec": "3WD"}
        env.execute("d = duration_of(spec)", context)  # a script always runs in the worker
        assert context["d"] == "P6D"
    finally:
        calendar.install(before)
        clock.set_clock(None)


def test_helpers_must_be_importable_by_name():
    with pytest.raises(TypeError, match="module-level"):
        IsolatedEnvironment({"double": lambda x: 2 * x}, pool=SandboxPool(size=1))


def shipped_expressions():
    """Every gateway condition and timer expression in the shipped diagrams."""
    found = []
    for path in sorted(WORKFLOWS.rglob("*.bpmn")):
        tree = etree.parse(str(path))
        for element in tree.iter():
            tag = etree.QName(element).localname if isinstance(element.tag, str) else ""
            if tag in ("conditionExpression", "timeDuration", "timeDate", "timeCycle") and (element.text or "").strip():
                found.append(element.text.strip())
    return found


def test_every_shipped_condition_and_timer_stays_in_process():
    expressions = shipped_expressions()
    assert len(expressions) >= 20
    helpers = frozenset(RestrictedEnvironment({"duration_of": calendar.duration_of}).globals)
    assert [e for e in expressions if not runs_inline(e, "eval", helpers)] == []


@pytest.mark.parametrize("source", [
    C_LOOP,
    "x * 10**6",                      # amplifies
    "'%s' % x", "f'{x}'", "'{}'.format(x)",
    "[i for i in x]", "(lambda: 1)()",
    "sorted(x)", "min(x, key=f)", "x.__class__", "x.count('a')",
    "duration_of(*x)", "dict(**x)", "_private",
    " + ".join(["a"] * 150),           # past the node limit
])
def test_code_that_could_be_expensive_goes_to_a_worker(source):
    assert not runs_inline(source, "eval", frozenset({"duration_of"}))


def shipped_scripts():
    found = []
    for path in sorted(WORKFLOWS.rglob("*.bpmn")):
        for element in etree.parse(str(path)).iter():
            if isinstance(element.tag, str) and etree.QName(element).localname == "script" and element.text:
                found.append(element.text)
    return found


def test_every_shipped_script_but_the_case_start_stays_in_process():
    scripts = shipped_scripts()
    assert len(scripts) >= 8
    isolated = [s for s in scripts if not runs_inline(s, "exec", frozenset({"duration_of"}))]
    # The start script calls time_limits.update(...), a method with effects: a worker runs it,
    # once per case; the escalations and closings, on every completion and timer, stay here.
    assert len(isolated) == 1 and "time_limits.update(" in isolated[0]


@pytest.mark.parametrize("source", [
    "x = x + x\ny = x + x",             # reads an earlier line: could double per line
    "x += 1", "x, y = 1, 2", "x = y = 1", "x.a = 1", "x[0] = 1", "del x",
    "for i in x:\n    y = i", "import os", "def f():\n    pass", "_x = 1", "x = 1\nprint(x)",
    "x = 10 ** 9", "x = [i for i in y]",
])
def test_scripts_beyond_plain_assignments_go_to_a_worker(source):
    assert not runs_inline(source, "exec", frozenset({"duration_of"}))


def test_an_inline_script_changes_the_data_as_a_worker_does():
    script = 'reason = "time_limit"\ntier = {"village": "town", "town": "county"}[tier]\ncount = count + 1'
    assert runs_inline(script, "exec")
    inline, isolated = {"tier": "village", "count": 1}, {"tier": "village", "count": 1}
    IsolatedEnvironment().execute(script, inline)
    IsolatedEnvironment().execute(script + "\nfor _ in []:\n    pass", isolated)  # the loop sends it to a worker
    assert inline == isolated == {"reason": "time_limit", "tier": "town", "count": 2}
