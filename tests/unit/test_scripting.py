"""Tests for the restricted script engine that runs untrusted diagram code."""
from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from app.engine import scripting
from app.engine.scripting import (
    RestrictedEnvironment,
    ScriptLimitExceeded,
    ScriptRejected,
    ScriptTimeout,
    add_days,
    check_expression,
    check_script,
    compile_restricted_code,
    create_script_engine,
    iso_days,
    now_utc,
    set_clock,
)

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SHORT_BUDGET = 0.2


# Every behaviour holds in both isolation modes: in this process, and in the worker processes
# of app.engine.sandbox (where the same restricted code runs behind a hard kill and a memory cap).
@pytest.fixture(params=["inline", "process"])
def env(request):
    return scripting.make_environment(isolation=request.param)


@pytest.fixture(params=["inline", "process"])
def fast_env(request):
    return scripting.make_environment(time_budget=SHORT_BUDGET, isolation=request.param)


@pytest.fixture
def fixed_clock():
    moment = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
    set_clock(lambda: moment)
    yield moment
    set_clock(None)


def run(env, script, **data):
    """Execute ``script`` on a copy of ``data`` and return the resulting task data."""
    context = dict(data)
    assert env.execute(script, context) is True
    return context


# --- escapes -----------------------------------------------------------------------

# Refused by the compiler: they must never reach eval/exec.
COMPILE_TIME_ESCAPES = [
    "().__class__.__base__.__subclasses__()",
    "[].__class__",
    "x.__class__.__mro__",
    "__import__('os')",
    "__builtins__",
    "exec('1')",
    "eval('1')",
    "(i for i in [1]).gi_frame.f_globals",
    "(i for i in [1]).gi_code",
    "now_utc.__globals__",
    "add_days.__code__",
]

COMPILE_TIME_SCRIPT_ESCAPES = [
    "import os",
    "from os import path",
    "import datetime",
    "class Sneaky:\n    pass",
    "_getattr_ = None",
    "def f(_write_):\n    return 1",
    "try:\n    pass\nexcept* Exception:\n    pass",
]


@pytest.mark.parametrize("source", COMPILE_TIME_ESCAPES)
def test_escape_expression_is_refused_before_running(env, source):
    with pytest.raises(SyntaxError) as info:
        env.evaluate(source, {"x": 1})
    assert isinstance(info.value.lineno, int)
    with pytest.raises(ScriptRejected):
        check_expression(source)


@pytest.mark.parametrize("source", COMPILE_TIME_SCRIPT_ESCAPES)
def test_escape_script_is_refused_before_running(env, source):
    context = {"x": 1}
    with pytest.raises(SyntaxError):
        env.execute(source, context)
    assert context == {"x": 1}
    with pytest.raises(ScriptRejected):
        check_script(source)


def test_import_refusal_says_why(env):
    with pytest.raises(ScriptRejected, match="import statements are not allowed"):
        check_script("import os")


@pytest.mark.parametrize(
    "source, error",
    [
        ("getattr(x, '__globals__')", NameError),
        ("open('/etc/passwd')", NameError),
        ("type(1)", NameError),
        ("globals()", NameError),
        ("vars()", NameError),
        ("locals()", NameError),
        ("dir()", NameError),
        ("compile('1', 's', 'eval')", NameError),
        ("setattr(x, 'y', 1)", NameError),
        ("SystemExit", NameError),
        ("'{0.__class__}'.format(1)", AttributeError),
        ("'{.__init__.__globals__}'.format(now_utc)", AttributeError),
        ("'{x.__class__}'.format_map({'x': 1})", AttributeError),
        ("str.format('{0.__class__}', 1)", AttributeError),
        ("datetime.sys", AttributeError),
        ("str.mro()", AttributeError),
        ("date.today().nonexistent", AttributeError),
    ],
)
def test_escape_is_refused_at_runtime(env, source, error):
    with pytest.raises(error):
        env.evaluate(source, {"x": 1})


def test_import_hook_only_serves_the_interpreters_own_imports():
    """C code (date.today, strptime) imports through the builtins; nothing else may."""
    hook = scripting._BUILTINS["__import__"]
    assert hook("time").__name__ == "time"
    for name in ("os", "sys", "builtins", "importlib", "datetime"):
        with pytest.raises(ImportError):
            hook(name)


def test_raising_base_exception_only_raises_an_exception(env):
    """SpiffWorkflow catches Exception only; a BaseException would skip the ERROR state."""
    with pytest.raises(Exception) as info:
        env.execute("raise BaseException('stop the worker')", {})
    assert type(info.value) is Exception


def test_modules_are_refused_as_helpers():
    with pytest.raises(TypeError):
        create_script_engine(helpers={"json": json})
    with pytest.raises(TypeError):
        create_script_engine(helpers={"limits": {"village": 15}})
    with pytest.raises(ValueError):
        create_script_engine(helpers={"_private": len})


def test_module_reachable_through_a_helper_is_refused():
    class Holder:
        codec = json

    env = RestrictedEnvironment(helpers={"Holder": Holder})
    with pytest.raises(AttributeError, match="module"):
        env.evaluate("Holder.codec", {})


@pytest.mark.parametrize(
    "script",
    [
        "n = now_utc()\nn.year = 3",
        "timedelta.days = 3",
        "def f():\n    return 1\nf.x = 1",
        "s = 'abc'\ns[0] = 'x'",
    ],
)
def test_writes_outside_dicts_and_lists_are_refused(env, script):
    with pytest.raises(TypeError):
        env.execute(script, {})


# --- what diagrams may do ------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("1 + 2 * 3 - 4 / 2", 5.0),
        ("7 // 2, 7 % 3, 2 ** 10, 1 << 4, -3", (3, 1, 1024, 16, -3)),
        ("amount > 1000 and tier == 'village'", True),
        ('time_limits["village"]', "P15D"),
        ("time_limits.get('county', 'P30D')", "P30D"),
        ("' Village '.strip().upper()", "VILLAGE"),
        ("'a-b'.replace('-', '_').split('_')", ["a", "b"]),
        ("', '.join(['x', 'y'])", "x, y"),
        ("'7'.zfill(3)", "007"),
        ("f'{tier}: {amount:.2f} ({count!r})'", "village: 1200.00 (3)"),
        ("f'{amount:>8}'", "    1200"),
        ("'%s-%03d' % (tier, count)", "village-003"),
        ("[n * n for n in range(4) if n]", [1, 4, 9]),
        ("{k: len(v) for k, v in time_limits.items()}", {"village": 4}),
        ("{n % 2 for n in range(5)}", {0, 1}),
        ("sum(n for n in range(5))", 10),
        ("sorted(['b', 'a'], key=lambda s: s)", ["a", "b"]),
        ("max([3, 1, 2]), min(3, 1), abs(-2), round(2.567, 2)", (3, 1, 2, 2.57)),
        ("list(zip([1, 2], 'ab')), list(enumerate('ab'))", ([(1, "a"), (2, "b")], [(0, "a"), (1, "b")])),
        ("any([False, True]) and all([1]) and isinstance(count, int)", True),
        ("list(map(str, filter(bool, reversed([0, 1, 2]))))", ["2", "1"]),
        ("dict(a=1), set([1]), tuple([1]), bool(0), int('3'), float('1.5')", ({"a": 1}, {1}, (1,), False, 3, 1.5)),
        ("pow(2, 10), pow(3, 4, 5)", (1024, 1)),
        ("'ab' * 3 + 'c'", "abababc"),
        ("[0] * 3 + [1]", [0, 0, 0, 1]),
        ("date(2024, 1, 31) + timedelta(days=1)", date(2024, 2, 1)),
        ("datetime(2024, 1, 1, tzinfo=None).isoformat()", "2024-01-01T00:00:00"),
        ("\n  amount >= 1200\n  ", True),
        ("date.today() <= date(9999, 1, 1)", True),
        ("datetime.strptime('2024-03-01', '%Y-%m-%d').day", 1),
        ("date(2024, 3, 1).strftime('%Y/%m/%d')", "2024/03/01"),
        ("f'{date(2024, 3, 1):%d.%m.%Y}'", "01.03.2024"),
    ],
)
def test_allowed_expressions(env, source, expected):
    data = {"amount": 1200, "tier": "village", "count": 3, "time_limits": {"village": "P15D"}}
    assert env.evaluate(source, data) == expected


def test_allowed_script_builds_data(env):
    result = run(
        env,
        """
counts["village"] += 1
counts["town"] = counts.get("town", 0) + 2
history["events"] += ["escalated"]
label = "case"
label += "-" + str(counts["village"])
total = 0
for tier, n in counts.items():
    total += n
steps = []
i = 0
while i < 3:
    steps.append(i)
    i += 1
def double(value):
    return value * 2
doubled = [double(n) for n in steps]
a, (b, c) = 1, (2, 3)
summary = {"total": total, "last": steps[-1]}
summary["total"] *= 10
print("logged", total)
""",
        counts={"village": 1},
        history={"events": ["created"]},
    )
    assert result == {
        "counts": {"village": 2, "town": 2},
        "history": {"events": ["created", "escalated"]},
        "label": "case-2",
        "total": 4,
        "tier": "town",
        "n": 2,
        "steps": [0, 1, 2],
        "i": 3,
        "doubled": [0, 2, 4],
        "a": 1,
        "b": 2,
        "c": 3,
        "summary": {"total": 40, "last": 2},
    }


def test_in_place_list_addition_keeps_identity():
    # Only in process: a worker's result comes back as a copy (the value is checked in both modes).
    shared = [1]
    context = {"d": {"items": shared}}
    RestrictedEnvironment().execute("d['items'] += [2]", context)
    assert context["d"]["items"] is shared
    assert shared == [1, 2]


def test_in_place_list_addition(env):
    context = {"d": {"items": [1]}}
    env.execute("d['items'] += [2]", context)
    assert context == {"d": {"items": [1, 2]}}


def test_print_output_does_not_become_task_data(env):
    result = run(env, "print('hello')\nx = 1")
    assert result == {"x": 1}


# --- helpers -------------------------------------------------------------------------


def test_now_utc_uses_the_overridable_clock(env, fixed_clock):
    assert now_utc() == fixed_clock
    assert env.evaluate("now_utc()", {}) == fixed_clock
    assert env.evaluate("now_utc().tzinfo is not None", {}) is True
    result = run(env, "due = add_days(now_utc(), 15).isoformat()")
    assert result == {"due": "2024-03-16T08:30:00+00:00"}


def test_now_utc_converts_other_zones_and_refuses_naive_clocks():
    set_clock(lambda: datetime(2024, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=8))))
    try:
        assert now_utc() == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
        assert now_utc().utcoffset() == timedelta(0)
        set_clock(lambda: datetime(2024, 3, 1))
        with pytest.raises(ValueError):
            now_utc()
    finally:
        set_clock(None)
    assert abs(now_utc() - datetime.now(UTC)) < timedelta(seconds=5)


def test_iso_days():
    assert iso_days(15) == "P15D"
    assert iso_days(0) == "P0D"
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError):
            iso_days(bad)


def test_add_days_keeps_the_kind_of_value():
    assert add_days("2024-01-30", 3) == "2024-02-02"
    assert add_days("2024-02-28T10:00:00+08:00", 2) == "2024-03-01T10:00:00+08:00"
    assert add_days("2024-02-28T10:00:00Z", 1) == "2024-02-29T10:00:00+00:00"
    assert add_days(date(2024, 12, 31), 1) == date(2025, 1, 1)
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    assert add_days(moment, -1) == datetime(2023, 12, 31, tzinfo=UTC)
    with pytest.raises(TypeError):
        add_days(5, 1)
    with pytest.raises(TypeError):
        add_days("2024-01-01", "1")
    with pytest.raises(ValueError):
        add_days("not a date", 1)


def test_timer_expression_style_usage(env, fixed_clock):
    data = {"time_limits": {"village": iso_days(15)}}
    assert env.evaluate('time_limits["village"]', data) == "P15D"
    assert env.evaluate("add_days(now_utc().isoformat(), 3)", data) == "2024-03-04T08:30:00+00:00"


# --- execute semantics ---------------------------------------------------------------


def test_top_level_assignment_and_del_change_task_data(env):
    context = {"keep": 1, "drop": 2}
    env.execute("new = keep + 1\ndel drop", context)
    assert context == {"keep": 1, "new": 2}


def test_helpers_functions_and_guards_do_not_leak_into_data(env):
    context = {"x": 1}
    env.execute("def f():\n    return 2\ng = lambda: 3\ny = f() + g()\nnow_utc = 5", context)
    assert context == {"x": 1, "y": 5}
    assert not any(key.startswith("_") for key in context)


def test_data_named_like_a_helper_fails_fast(env):
    with pytest.raises(ValueError, match="date"):
        env.execute("x = 1", {"date": "2024-01-01"})


def test_evaluate_does_not_change_task_data(env):
    context = {"x": 1}
    assert env.evaluate("x + 1", context) == 2
    assert context == {"x": 1}


def test_failed_script_still_cleans_up(env):
    context = {"x": 1}
    with pytest.raises(ZeroDivisionError):
        env.execute("y = 2\nz = 1 / 0", context)
    assert context == {"x": 1, "y": 2}


# --- compile errors ------------------------------------------------------------------


def test_syntax_error_has_integer_line_number(env):
    with pytest.raises(SyntaxError) as info:
        env.execute("x = 1\ny = (\n", {})
    assert info.value.lineno == 2
    assert type(info.value.lineno) is int


def test_policy_refusal_is_a_syntax_error_with_its_line(env):
    with pytest.raises(SyntaxError) as info:
        env.execute("a = 1\nb = 2\nc = a.__class__", {})
    assert info.value.lineno == 3
    with pytest.raises(SyntaxError) as info:
        env.execute("return 1", {})
    assert type(info.value.lineno) is int


def test_check_functions_report_line_numbers():
    with pytest.raises(ScriptRejected) as info:
        check_script("a = 1\nb = 2\nimport os")
    assert info.value.lineno == 3
    assert "line 3" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ScriptRejected, match="line 1"):
        check_expression("x ==")
    with pytest.raises(ScriptRejected):
        check_expression("x = 1")  # a statement is not an expression


def test_check_functions_accept_valid_code():
    assert check_expression('tier == "village"') is None
    assert check_expression("\n  accepted == True\n") is None
    assert check_script('tier = {"village": "town"}[tier]\nescalation_count = escalation_count + 1') is None


def test_compiled_code_is_cached():
    first = compile_restricted_code("cached_probe + 1", "eval")
    assert compile_restricted_code("cached_probe + 1", "eval") is first
    assert compile_restricted_code("cached_probe + 1", "exec") is not first


def test_environment_uses_the_compile_cache(env):
    env.evaluate("cache_probe_two * 2", {"cache_probe_two": 1})
    hits = scripting._compile_cached.cache_info().hits
    env.evaluate("cache_probe_two * 2", {"cache_probe_two": 2})
    assert scripting._compile_cached.cache_info().hits == hits + 1


def test_refused_code_is_refused_every_time(env):
    for _ in range(2):
        with pytest.raises(SyntaxError):
            env.evaluate("__import__('os')", {})


# --- time limit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        "while True:\n    pass",
        "while True:\n  try: pass\n  except BaseException: pass",
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
        "def spin():\n    try:\n        while True:\n            pass\n    finally:\n        return spin()\nspin()",
        "x = sum(1 for i in range(10**6) for j in range(10**6))",
        "x = list(map(lambda i: [j for j in range(10**6)], range(10**6)))",
    ],
)
def test_runaway_code_stops_within_budget(fast_env, script):
    started = time.monotonic()
    with pytest.raises(ScriptTimeout):
        fast_env.execute(script, {})
    assert time.monotonic() - started < SHORT_BUDGET + 0.5


def test_timeout_is_an_ordinary_exception():
    assert issubclass(ScriptTimeout, Exception)
    assert issubclass(ScriptLimitExceeded, Exception)
    assert issubclass(ScriptRejected, ValueError)


def test_budget_is_per_evaluation(fast_env):
    with pytest.raises(ScriptTimeout):
        fast_env.evaluate("[0 for i in range(10**6) for j in range(10**6)]", {})
    # A fresh evaluation gets a fresh budget.
    assert fast_env.execute("n = 0\nfor i in range(1000):\n    n += i", {}) is True


# --- size limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "'a' * 10**10",
        "10**10 * 'a'",
        "[0] * 10**10",
        "2 ** 10**10",
        "2 ** 4097",
        "pow(2, 10**10)",
        "1 << 10**10",
        "(2 ** 4000) * (2 ** 4000)",
        "list(range(10**10))",
        "range(10**7)",
        "'%0999999999d' % 1",
        "'%*d' % (10**9, 1)",
        "f'{1:>999999999}'",
        "f'{1:>{width}}'",
        "'x'.ljust(10**10)",
        "'x'.center(10**10)",
        "('a' * 10**7).replace('a', 'bb')",
        "''.join(['a' * 10**7] * 10)",
        "('\\t' * 10**6).expandtabs(100)",
        "(1).to_bytes(10**10, 'big')",
        "int.from_bytes(b'x' * 10**6, 'big')",
        "round(5, -10**9)",
    ],
)
def test_size_bombs_are_refused(env, source):
    with pytest.raises(ScriptLimitExceeded):
        env.evaluate(source, {"width": 10**9})


@pytest.mark.parametrize(
    "script",
    [
        "s = 'ab'\nwhile True:\n    s = s + s",
        "s = 'ab'\nwhile True:\n    s += s",
        "l = [1]\nwhile True:\n    l.extend(l)",
        "l = [1]\nwhile True:\n    l += l",
        "d = {'s': 'ab'}\nd['s'] *= 10**10",
        "n = 3\nwhile True:\n    n = n * n",
        "n = 3\nwhile True:\n    n **= 2",
    ],
)
def test_growing_loops_hit_the_size_limit_before_the_deadline(env, script):
    with pytest.raises(ScriptLimitExceeded):
        env.execute(script, {})


def test_unbound_class_methods_cannot_skip_size_checks(env):
    with pytest.raises(AttributeError):
        env.evaluate("str.ljust('x', 10**10)", {})


def test_sum_refuses_list_concatenation(env):
    with pytest.raises(TypeError):
        env.evaluate("sum([[1], [2]], [])", {})
    assert env.evaluate("sum([timedelta(days=1)], timedelta(0))", {}) == timedelta(days=1)


# --- SpiffWorkflow integration -------------------------------------------------------

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="http://example.org/test">
  <bpmn:process id="proc" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="compute" />
    <bpmn:scriptTask id="compute">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>SCRIPT</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="compute" targetRef="gw" />
    <bpmn:exclusiveGateway id="gw">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f_escalate</bpmn:outgoing>
      <bpmn:outgoing>f_stay</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f_escalate" sourceRef="gw" targetRef="end_escalated">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">
        counts["village"] &gt; 1
      </bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_stay" sourceRef="gw" targetRef="end_stayed">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">counts["village"] &lt;= 1</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:endEvent id="end_escalated"><bpmn:incoming>f_escalate</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_stayed"><bpmn:incoming>f_stay</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _run_workflow(script, data, engine):
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(BPMN.replace("SCRIPT", script).encode(), "inline.bpmn")
    workflow = BpmnWorkflow(parser.get_spec("proc"), script_engine=engine)
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(data)
    return workflow


def _state_of(workflow, spec_name):
    return {TaskState.get_name(t.state) for t in workflow.get_tasks() if t.task_spec.name == spec_name}


@pytest.mark.parametrize("start, branch", [(1, "end_escalated"), (0, "end_stayed")])
def test_workflow_runs_script_and_gateway_with_restricted_engine(fixed_clock, start, branch):
    script = 'counts["village"] += 1\ndue = add_days(now_utc().isoformat(), 15)\ndef unused():\n    pass'
    workflow = _run_workflow(script, {"counts": {"village": start}}, create_script_engine())
    workflow.do_engine_steps()
    assert workflow.completed
    assert _state_of(workflow, branch) == {"COMPLETED"}
    assert workflow.data == {"counts": {"village": start + 1}, "due": "2024-03-16T08:30:00+00:00"}


def test_workflow_marks_runaway_script_task_as_error():
    workflow = _run_workflow("x = 1\nwhile True:\n    pass", {"counts": {"village": 1}}, create_script_engine(time_budget=SHORT_BUDGET))
    with pytest.raises(WorkflowTaskException) as info:
        workflow.do_engine_steps()
    assert info.value.error_type == "ScriptTimeout"
    assert info.value.line_number == 2
    assert _state_of(workflow, "compute") == {"ERROR"}


@pytest.mark.parametrize(
    "script, line, text",
    [
        ("x = 1\ny = (", 2, "y = ("),
        ("x = 1\nimport os", 2, "import os"),
        ("x = 1\ny = 'a' * 10**10", 2, "y = 'a' * 10**10"),
        # SpiffWorkflow's report concatenates err.args[0]; a non-string key must not crash it.
        ("d = {}\nx = d[1]", 2, "x = d[1]"),
        ("x = 1\nraise ValueError(5)", 2, "raise ValueError(5)"),
    ],
)
def test_workflow_reports_the_failing_line(script, line, text):
    workflow = _run_workflow(script, {"counts": {"village": 1}}, create_script_engine())
    with pytest.raises(WorkflowTaskException) as info:
        workflow.do_engine_steps()
    assert info.value.line_number == line
    assert info.value.error_line == text
    assert _state_of(workflow, "compute") == {"ERROR"}


# --- the project's diagrams ----------------------------------------------------------

_BPMN_NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
_SCRIPT_XPATH = "//bpmn:script | //spiffworkflow:preScript | //spiffworkflow:postScript"
_EXPRESSION_XPATH = (
    "//bpmn:conditionExpression | //bpmn:timeDuration | //bpmn:timeDate | //bpmn:timeCycle"
    " | //bpmn:completionCondition | //bpmn:loopCardinality"
)


def _bundles():
    if not WORKFLOWS.is_dir():
        return []
    return sorted({path.parent for path in WORKFLOWS.rglob("*.bpmn")})


def test_project_diagrams_pass_the_restrictions():
    """Every script, condition and timer in workflows/ compiles under the restrictions."""
    checked = 0
    for bundle in _bundles():
        parser = SpiffBpmnParser(validator=VALIDATOR)
        parser.add_bpmn_files(sorted(str(p) for p in bundle.glob("*.bpmn")))
        dmn_files = sorted(str(p) for p in bundle.glob("*.dmn"))
        if dmn_files:
            parser.add_dmn_files(dmn_files)
        assert parser.get_process_ids()
        for path in sorted(bundle.glob("*.bpmn")):
            root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
            for node in root.xpath(_SCRIPT_XPATH, namespaces=_BPMN_NS):
                if node.text and node.text.strip():
                    check_script(node.text)
                    checked += 1
            for node in root.xpath(_EXPRESSION_XPATH, namespaces=_BPMN_NS):
                if node.text and node.text.strip():
                    check_expression(node.text)
                    checked += 1
    assert checked > 0
