"""Run one dispute's workflow: start, load, complete a task, fire timers, save.

The stored state leaves out the process definition: the parsed spec of the case's version is
attached on load (ENGINE-NOTES.md measured 2x completions/s and 3-6x less memory this way).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import SpiffWorkflow.bpmn.specs.event_definitions.timer as _timer_module
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnSubWorkflowConverter,
    BpmnWorkflowConverter,
    TaskConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from app import clock
from app.engine.errors import ScriptFailure, TaskNotFound, TaskNotReady
from app.engine.specs import ParsedProcess
from app.engine.walks import SubWorkflow, Workflow


class _ClockDatetime(datetime):
    """datetime whose now() is app.clock.now(), so timers follow the controllable clock."""

    @classmethod
    def now(cls, tz=None):
        current = clock.now()
        return current.astimezone(tz) if tz is not None else current.replace(tzinfo=None)


# SpiffWorkflow's timer definitions read datetime.now() directly; route them to our clock.
_timer_module.datetime = _ClockDatetime


def _share_strings(value, memo: dict):
    """Make equal strings inside freshly restored data one object (deltas repeat values)."""
    if isinstance(value, str):
        return memo.setdefault(value, value)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (str, dict, list)):
                value[key] = _share_strings(item, memo)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, (str, dict, list)):
                value[index] = _share_strings(item, memo)
    return value


def _restoring_memo(workflow) -> dict:
    """The memo of the load in progress (ids and strings), or a throw-away one."""
    memo = getattr(workflow.top_workflow, "_restoring_memo", None)
    return memo if memo is not None else {}


def _restore_tasks(converter, workflow, tasks: dict) -> None:
    """Rebuild ``workflow.tasks`` keyed by the tasks' own ids.

    Each Task registers itself in ``workflow.tasks`` as it is built (its parent must be there
    for its data); the library then rebuilds the mapping with a second UUID per task.
    """
    workflow.tasks = {}
    for dct in tasks.values():
        converter.registry.restore(dct, workflow=workflow)


class _StateOnlyConverter(BpmnWorkflowConverter):
    """Serialize a workflow without its spec; restore it onto a spec the caller already holds."""

    def __init__(self, target_class, registry, typename="BpmnWorkflow"):
        # stored states name the library's class, whichever class restores them
        super().__init__(target_class, registry, typename)

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None):
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow._restoring_memo = memo = {}
        try:
            _restore_tasks(self, workflow, dct["tasks"])
            workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
            self.set_default_attributes(workflow, dct)
            _share_strings(workflow.data, memo)
            self.subprocesses_from_dict(dct["subprocesses"], workflow)
        finally:
            del workflow._restoring_memo
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class _SubWorkflowConverter(BpmnSubWorkflowConverter):
    def __init__(self, target_class, registry, typename="BpmnSubWorkflow"):
        super().__init__(target_class, registry, typename)

    def from_dict(self, dct, task, top_workflow):
        spec = top_workflow.subprocess_specs.get(task.task_spec.spec)
        subprocess = self.target_class(spec, task.id, top_workflow, deserializing=True)
        _restore_tasks(self, subprocess, dct["tasks"])
        subprocess.task_tree = subprocess.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(subprocess, dct)
        _share_strings(subprocess.data, _restoring_memo(top_workflow))
        return subprocess


class _SharingTaskConverter(TaskConverter):
    """Restore tasks with one UUID object per id, equal strings shared, finished tasks' data shared.

    The library gives every task a full copy of its data on load (its parent's data merged
    with its delta): most of a loaded case's memory. A finished task's data is never changed
    again (the engine only writes the data of tasks it runs), so a finished task under a
    finished parent keeps its parent's dict when its delta is empty, and a shallow copy
    otherwise. Tasks that can still run get the library's copy, as before.
    """

    def from_dict(self, dct, workflow):
        memo = _restoring_memo(workflow)

        def uuid(text: str) -> UUID:
            key = ("id", text)
            value = memo.get(key)
            if value is None:
                value = memo[key] = UUID(text)
            return value

        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, task_spec, state=dct["state"], id=uuid(dct["id"]))
        task._parent = uuid(dct["parent"]) if dct["parent"] is not None else None
        task._children = [uuid(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        task.internal_data = self.registry.restore(dct["internal_data"])
        if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            task.workflow.top_workflow.event_manager.add_task(task)

        delta, parent = dct.get("delta"), task.parent
        if not delta or parent is None:
            task.data = _share_strings(self.registry.restore(dct["data"]), memo)
            return task
        updates, deletions = delta.get("updates", {}), delta.get("deletions", {})
        if task.state & TaskState.FINISHED_MASK and parent.state & TaskState.FINISHED_MASK:
            if not updates and not deletions:
                task.data = parent.data
                return task
            data = dict(parent.data)
        else:
            data = DeepMerge.merge({}, parent.data)
        data.update(_share_strings(self.registry.restore(updates), memo))
        for key in deletions:
            data.pop(key, None)
        task.data = data
        return task


_config = dict(SPIFF_CONFIG)
del _config[BpmnWorkflow], _config[BpmnSubWorkflow]
_config[Workflow] = _StateOnlyConverter
_config[SubWorkflow] = _SubWorkflowConverter
_config[Task] = _SharingTaskConverter
_serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_config))
SERIALIZER_VERSION = _serializer.VERSION


@dataclass
class ReadyTask:
    task_id: str
    spec_name: str
    title: str
    lane: str | None
    form: str | None
    data: dict


@dataclass
class PendingTimer:
    task_id: str
    spec_name: str
    name: str
    due_at: datetime
    #: True for a time limit that cancels its activity; False for a reminder
    interrupting: bool
    attached_to: str | None


@dataclass
class Snapshot:
    """What projections need from one walk over the task tree."""

    ready: list[ReadyTask]
    timers: list[PendingTimer]
    variables: dict
    completed: bool


def _state_name(task) -> str:
    return TaskState.get_name(task.state)


def _wrap_step_errors(fn):
    """Turn a failure inside diagram code into ScriptFailure naming the element."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkflowTaskException as exc:
            element = exc.task.task_spec.name if exc.task is not None else ""
            raise ScriptFailure(str(exc), element_id=element) from exc
        except SpiffWorkflowException as exc:
            raise ScriptFailure(str(exc)) from exc

    return wrapper


class Instance:
    """One running workflow bound to its parsed spec and a restricted script engine."""

    def __init__(self, parsed: ParsedProcess, workflow: Workflow):
        self.parsed = parsed
        self.workflow = workflow

    @classmethod
    @_wrap_step_errors
    def start(cls, parsed: ParsedProcess, data: dict, script_engine) -> Instance:
        workflow = Workflow(parsed.spec, parsed.subprocess_specs, script_engine=script_engine)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
        workflow.do_engine_steps()
        return cls(parsed, workflow)

    @classmethod
    def load(cls, parsed: ParsedProcess, state: str, script_engine) -> Instance:
        dct = json.loads(state)
        _serializer.migrate(dct)
        workflow = _serializer.from_dict(
            dct, spec=parsed.spec, subprocess_specs=parsed.subprocess_specs
        )
        # The script engine is not serialized: re-attach it after every load.
        workflow.script_engine = script_engine
        return cls(parsed, workflow)

    def dump(self) -> str:
        return _serializer.serialize_json(self.workflow)

    @property
    def completed(self) -> bool:
        return self.workflow.completed

    def snapshot(self) -> Snapshot:
        """Ready user tasks, pending timers and current data, from a single walk of the tree.

        Projections run after every step; walking the tree once instead of once per question
        is a measurable share of a timer firing.
        """
        ready, timers, latest_active, latest_done = [], [], None, None
        for task in self.workflow.get_tasks():
            state = task.state
            spec = task.task_spec
            if state == TaskState.READY and isinstance(spec, UserTask):
                info = self.parsed.user_tasks.get(spec.name)
                if info is not None:
                    ready.append(ReadyTask(str(task.id), info.spec_name, info.title, info.lane, info.form, task.data))
            if state & (TaskState.READY | TaskState.WAITING) and isinstance(spec, UserTask):
                if latest_active is None or task.last_state_change > latest_active.last_state_change:
                    latest_active = task
            elif state == TaskState.COMPLETED:
                if latest_done is None or task.last_state_change > latest_done.last_state_change:
                    latest_done = task
            elif state == TaskState.WAITING and isinstance(spec, CatchingEvent):
                timer = self._pending_timer(task)
                if timer is not None:
                    timers.append(timer)
        latest = latest_active or latest_done
        if latest is None:
            variables = dict(self.workflow.data)
        elif self.workflow.completed:
            variables = {**latest.data, **self.workflow.data}
        else:
            variables = latest.data
        return Snapshot(ready, timers, variables, self.workflow.completed)

    def ready_user_tasks(self) -> list[ReadyTask]:
        return self.snapshot().ready

    def pending_timers(self) -> list[PendingTimer]:
        """Timers waiting to fire, with their absolute due time (UTC)."""
        return self.snapshot().timers

    def variables(self) -> dict:
        """The case's current process data: what the latest step left behind."""
        return self.snapshot().variables

    def _pending_timer(self, task) -> PendingTimer | None:
        definition = getattr(task.task_spec, "event_definition", None)
        if not isinstance(definition, TimerEventDefinition):
            return None
        value = task.internal_data.get("event_value")
        if value is None:
            return None
        due = value["next"] if isinstance(value, dict) else value
        attached = None
        if isinstance(task.task_spec, BoundaryEvent) and task.parent is not None:
            # The boundary split's one child that is not an event is the activity it guards.
            attached = next(
                (c for c in task.parent.children if not isinstance(c.task_spec, BoundaryEvent)), None
            )
        return PendingTimer(
            task_id=str(task.id),
            spec_name=task.task_spec.name,
            name=self.parsed.titles.get(task.task_spec.name, task.task_spec.name),
            # a plain datetime: the library's parse returns our clock-patched subclass
            due_at=datetime.fromisoformat(TimerEventDefinition.get_datetime(due).isoformat()),
            interrupting=bool(getattr(task.task_spec, "cancel_activity", True)),
            attached_to=attached.task_spec.name if attached is not None else None,
        )

    def task_state(self, task_id: str) -> str | None:
        task = self._find(task_id)
        return _state_name(task) if task is not None else None

    def _find(self, task_id: str):
        try:
            return self.workflow.get_task_from_id(UUID(task_id))
        except (ValueError, KeyError, SpiffWorkflowException):
            return None

    @_wrap_step_errors
    def complete(self, task_id: str, data: dict) -> None:
        """Complete a READY user task with the submitted data and run the engine on.

        SpiffWorkflow's Task.run() does not check the state, so a task cancelled by a time
        limit would be marked COMPLETED: refuse anything that is not READY.
        """
        task = self._find(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if task.state != TaskState.READY:
            raise TaskNotReady(task_id, _state_name(task))
        task.data.update(data)
        task.run()
        self.workflow.do_engine_steps()

    @_wrap_step_errors
    def fire_due_timers(self) -> list[str]:
        """Fire every timer due by clock.now(); return the engine task ids that fired.

        Both calls are needed: refresh_timers() marks due timers ready, do_engine_steps() runs
        them and whatever follows.
        """
        waiting = [str(t.id) for t in self.workflow.get_tasks(state=TaskState.WAITING, spec_class=CatchingEvent)]
        self.workflow.refresh_timers()
        self.workflow.do_engine_steps()
        fired = []
        for task_id in waiting:
            task = self._find(task_id)
            if task is not None and task.state == TaskState.COMPLETED:
                fired.append(task_id)
        return fired

    # -- interventions -----------------------------------------------------------------------
    def move_timer(self, task_id: str, due_at: datetime) -> None:
        """Give a waiting timer a new absolute due time (extending a time limit, resuming)."""
        task = self._find(task_id)
        if task is None or task.state != TaskState.WAITING:
            raise TaskNotFound(task_id)
        if not isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
            raise TaskNotFound(task_id)
        task.internal_data["event_value"] = due_at.isoformat()

    def update_data(self, values: dict) -> None:
        """Set process data on the tasks that carry it forward: the ready, waiting and started
        ones, and the split in front of a stage's boundary timers, whose data a timer copies
        again over its own when it fires (without it an escalation by time limit undid the change)."""
        for task in self.workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED):
            task.data.update(values)
            if task.parent is not None and isinstance(task.parent.task_spec, BoundaryEventSplit):
                task.parent.data.update(values)

    def cancel(self, **final_data) -> None:
        """End the workflow now (a case withdrawn by the parties); nothing further runs."""
        self.workflow.data.update(final_data)
        self.workflow.cancel()
