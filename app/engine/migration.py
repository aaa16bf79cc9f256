"""Move a running workflow's state onto another version's spec.

An instance stores only its state (runtime.py): every task names its spec by the BPMN element id,
and the spec is attached on load. Moving a case to a new version is therefore a question of
whether the new spec still has every step the case has been through or is in now:

- a completed, active (ready, waiting, started) or failed task whose element the new version
  removed, or whose kind changed under an active task, refuses the move: the case's history or
  its current work would point at nothing;
- predicted tasks (SpiffWorkflow's FUTURE/LIKELY/MAYBE look-ahead) that no longer match the new
  diagram, and cancelled tasks whose element is gone, are dropped and the look-ahead is rebuilt
  from the new spec (``Workflow._predict``), so the case continues along the new diagram;
- a running timer keeps the due time it was given when it started, even if the new version
  changed its expression (the change applies from the next time the timer starts).

``plan_migration`` does all of this in memory and reports; ``migrate`` also returns the state to
store. A dry run and the real move therefore decide the same way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from app.engine.errors import EngineError
from app.engine.runtime import Instance, _serializer
from app.engine.specs import ParsedProcess

_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED
_KEPT = TaskState.COMPLETED | TaskState.ERROR | _ACTIVE
_PREDICTED = TaskState.FUTURE | TaskState.LIKELY | TaskState.MAYBE


class MigrationRefused(EngineError):
    """The case cannot move to the target version; ``plan.refusals`` says why."""

    def __init__(self, plan: MigrationPlan):
        self.plan = plan
        super().__init__("; ".join(plan.refusals))


@dataclass
class MigrationPlan:
    """What moving one workflow state to a target spec does (or why it cannot)."""

    #: why the move is refused (empty: it may go ahead)
    refusals: list[str] = field(default_factory=list)
    #: predicted or cancelled steps left out because the new version changed or removed them
    dropped: list[str] = field(default_factory=list)
    #: what changes for the case's current work (forms, lanes, titles, running timers)
    changes: list[str] = field(default_factory=list)
    #: spec names of the case's active tasks (ready, waiting, started)
    active: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals

    def as_dict(self) -> dict:
        return {"ok": self.ok, "refusals": self.refusals, "dropped": self.dropped,
                "changes": self.changes, "active": self.active}


def step_names(parsed: ParsedProcess) -> dict[str, str]:
    """Every BPMN element that became a task spec, in every process of the bundle → its title."""
    names = {}
    for process_spec in [parsed.spec, *parsed.subprocess_specs.values()]:
        for name, task_spec in process_spec.task_specs.items():
            if getattr(task_spec, "bpmn_id", None):
                names[name] = parsed.titles.get(name, name)
    return names


def compare_versions(source: ParsedProcess, target: ParsedProcess) -> dict[str, list[str]]:
    """The BPMN elements the target adds and removes compared with the source (by id)."""
    old, new = step_names(source), step_names(target)
    return {"added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new))}


def _label(name: str, source: ParsedProcess | None, target: ParsedProcess) -> str:
    title = (source.titles.get(name) if source else None) or target.titles.get(name) or name
    return f"{title} ({name})" if title != name else name


def _state(task: dict) -> str:
    return TaskState.get_name(task["state"])


def _check_workflow(wf: dict, spec, label_of, plan: MigrationPlan, source_spec, replan: set[str]) -> set[str]:
    """Check one (sub)workflow's tasks against ``spec``; drop what may go; return dropped ids.

    The parents of dropped tasks are added to ``replan``: their look-ahead is rebuilt after load.
    """
    tasks = wf["tasks"]
    drop_roots: list[str] = []
    for task_id, task in tasks.items():
        name, state = task["task_spec"], task["state"]
        new_spec = spec.task_specs.get(name)
        if new_spec is None:
            if state & _KEPT:
                verb = "is active" if state & _ACTIVE else "was completed" if state == TaskState.COMPLETED else "failed"
                plan.refusals.append(f"step {label_of(name)} {verb} in this case but the new version removed it")
            elif state & (_PREDICTED | TaskState.CANCELLED):
                drop_roots.append(task_id)
            continue
        if state & _ACTIVE and source_spec is not None:
            old_spec = source_spec.task_specs.get(name)
            if old_spec is not None and type(old_spec).__name__ != type(new_spec).__name__:
                plan.refusals.append(
                    f"active step {label_of(name)} changed from {type(old_spec).__name__} to "
                    f"{type(new_spec).__name__} in the new version")
        if state & _PREDICTED and task["parent"] is not None:
            parent = tasks.get(task["parent"])
            parent_spec = spec.task_specs.get(parent["task_spec"]) if parent else None
            if parent_spec is not None and name not in {output.name for output in parent_spec.outputs}:
                drop_roots.append(task_id)

    dropped: set[str] = set()
    for root in drop_roots:
        if root in dropped or root not in tasks:
            continue
        name = tasks[root]["task_spec"]
        if tasks[root]["state"] == TaskState.CANCELLED or name not in spec.task_specs:
            plan.dropped.append(f"{label_of(name)} ({_state(tasks[root]).lower()})")
        parent = tasks.get(tasks[root]["parent"])
        stack = [root]
        while stack:
            current = tasks.pop(stack.pop(), None)
            if current is None:
                continue
            dropped.add(current["id"])
            stack.extend(current["children"])
        if parent is not None:
            parent["children"] = [child for child in parent["children"] if child != root]
            replan.add(parent["id"])
    if wf.get("last_task") in dropped:
        wf["last_task"] = None
    return dropped


def _describe_changes(wf: dict, source: ParsedProcess, target: ParsedProcess, source_spec, spec, label_of,
                      plan: MigrationPlan) -> None:
    for task in wf["tasks"].values():
        if not task["state"] & _ACTIVE:
            continue
        name = task["task_spec"]
        plan.active.append(name)
        old_user, new_user = source.user_tasks.get(name), target.user_tasks.get(name)
        if old_user and new_user:
            for attribute, what in (("title", "title"), ("lane", "lane"), ("form", "form")):
                before, after = getattr(old_user, attribute), getattr(new_user, attribute)
                if before != after:
                    plan.changes.append(f"active step {label_of(name)}: {what} {before!r} → {after!r}")
        old_spec = source_spec.task_specs.get(name) if source_spec is not None else None
        old_timer = getattr(old_spec, "event_definition", None)
        new_timer = getattr(spec.task_specs.get(name), "event_definition", None)
        if isinstance(old_timer, TimerEventDefinition) and isinstance(new_timer, TimerEventDefinition):
            if old_timer.expression != new_timer.expression:
                plan.changes.append(
                    f"running timer {label_of(name)} keeps its due time; the new expression "
                    f"{new_timer.expression!r} applies the next time it starts")


def _subprocess_spec_name(parent_task: dict | None, owner_spec) -> str | None:
    if parent_task is None or owner_spec is None:
        return None
    parent_spec = owner_spec.task_specs.get(parent_task["task_spec"])
    return getattr(parent_spec, "spec", None)


def _plan(state: str, source: ParsedProcess | None, target: ParsedProcess) -> tuple[dict, MigrationPlan, set[str]]:
    dct = json.loads(state)
    _serializer.migrate(dct)
    plan = MigrationPlan()
    replan: set[str] = set()

    def label_of(name):
        return _label(name, source, target)

    def old_spec_named(name):
        if source is None:
            return None
        return source.spec if name is None else source.subprocess_specs.get(name)

    dropped = _check_workflow(dct, target.spec, label_of, plan, old_spec_named(None), replan)
    if source is not None:
        _describe_changes(dct, source, target, old_spec_named(None), target.spec, label_of, plan)

    # Sub-process states hang off their parent task (a call activity or embedded sub-process),
    # which may itself sit in another sub-process: resolve owners top-down.
    owners = {task_id: (target.spec, None) for task_id in dct["tasks"]}
    pending = dict(dct["subprocesses"])
    while pending:
        progressed = False
        for sub_id, sub in list(pending.items()):
            parent_id = sub.get("parent_task_id") or sub_id
            if parent_id in dropped:
                del dct["subprocesses"][sub_id]
                del pending[sub_id]
                progressed = True
                continue
            if parent_id not in owners:
                continue
            owner_spec, _ = owners[parent_id]
            parent_task = _find_task(dct, parent_id)
            called = _subprocess_spec_name(parent_task, owner_spec)
            del pending[sub_id]
            progressed = True
            if called is None or called not in target.subprocess_specs:
                # the parent task's own refusal (removed step) already explains this
                if not plan.refusals:
                    plan.refusals.append(f"sub-process {sub.get('spec')} has no place in the new version")
                continue
            if called != sub.get("spec"):
                plan.refusals.append(
                    f"step {label_of(parent_task['task_spec'])} runs {sub.get('spec')} in this case but calls "
                    f"{called} in the new version")
                continue
            spec = target.subprocess_specs[called]
            dropped |= _check_workflow(sub, spec, label_of, plan, old_spec_named(called), replan)
            if source is not None:
                _describe_changes(sub, source, target, old_spec_named(called), spec, label_of, plan)
            for task_id in sub["tasks"]:
                owners[task_id] = (spec, sub_id)
        if not progressed:
            for sub in pending.values():
                plan.refusals.append(f"sub-process {sub.get('spec')} is attached to a task the state does not hold")
            break
    return dct, plan, replan - dropped


def _find_task(dct: dict, task_id: str) -> dict | None:
    if task_id in dct["tasks"]:
        return dct["tasks"][task_id]
    for sub in dct["subprocesses"].values():
        if task_id in sub["tasks"]:
            return sub["tasks"][task_id]
    return None


def migrate(state: str, source: ParsedProcess | None, target: ParsedProcess, script_engine) -> tuple[Instance, MigrationPlan]:
    """Load ``state`` onto ``target`` (checked, look-ahead rebuilt); raise MigrationRefused if it cannot.

    ``source`` is the spec the state runs on now; it is optional and only used to describe what
    changes for the case's current work.
    """
    dct, plan, replan = _plan(state, source, target)
    if not plan.ok:
        raise MigrationRefused(plan)
    try:
        workflow = _serializer.from_dict(dct, spec=target.spec, subprocess_specs=target.subprocess_specs)
        workflow.script_engine = script_engine
        missing = [t for t in workflow.get_tasks() if t.task_spec is None]
        if missing:
            plan.refusals.append("the new version lacks steps this case holds")
            raise MigrationRefused(plan)
        # Rebuild the look-ahead only where something was dropped, as the library does from a
        # task that is (re)started: an unchanged case keeps its state byte for byte.
        for task_id in sorted(replan):
            task = workflow.get_task_from_id(UUID(task_id))
            if task.has_state(TaskState.NOT_FINISHED_MASK):
                task.task_spec._predict(task, mask=TaskState.NOT_FINISHED_MASK)
    except SpiffWorkflowException as exc:
        plan.refusals.append(f"the case's position does not fit the new version: {exc}")
        raise MigrationRefused(plan) from None
    if not workflow.completed and not workflow.get_tasks(state=_ACTIVE):
        plan.refusals.append("after the move the case would have nothing left to do")
        raise MigrationRefused(plan)
    return Instance(target, workflow), plan


def plan_migration(state: str, source: ParsedProcess | None, target: ParsedProcess, script_engine) -> MigrationPlan:
    """What ``migrate`` would do, without keeping anything (a dry run)."""
    try:
        return migrate(state, source, target, script_engine)[1]
    except MigrationRefused as exc:
        return exc.plan
