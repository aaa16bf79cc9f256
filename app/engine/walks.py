"""The task-tree walks SpiffWorkflow repeats inside every engine step, without its iterator.

``do_engine_steps`` asks for the READY tasks about ten times per completed user task, and every
task that finishes asks its workflow for the WAITING ones. The library answers each question
with a ``TaskIterator``: a filter object, a generator step, a depth count and a children list
rebuilt per task, 0.09 ms a walk of a 27-task case, a third of a village completion's engine
time. ``walk`` visits the same tasks in the same order (depth first, a sub-process's tree
before the children of the task that runs it, children of a predicted task skipped unless the
question is about predicted tasks) and yields those in the asked state.

The library's iterator also stops descending 1,000 levels down. A walk only goes that deep in
a tree of more than 1,000 tasks, so larger trees are left to the library.
"""
from __future__ import annotations

from collections.abc import Iterator

from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

#: below this many tasks (all sub-processes counted) no walk reaches the library's depth limit
_WALKABLE_TASKS = 1000


def _lowest_state_worth_descending(state: int) -> int:
    """The library's rule: a child never has a more definite state than its parent."""
    if state & TaskState.PREDICTED_MASK:
        return TaskState.MAYBE
    if state & TaskState.DEFINITE_MASK:
        return TaskState.FUTURE
    return TaskState.COMPLETED


def walk(root: Task, state: int, into_subprocesses: bool = True) -> Iterator[Task]:
    """Yield the tasks under ``root`` (itself included) whose state is in the mask ``state``.

    A task's children are looked up when the walk reaches it, before it is yielded, as the
    library does: a caller may change the tree between two tasks.
    """
    lowest = _lowest_state_worth_descending(state)
    # keyed by the running task object: UUID's __hash__ is Python code, id() is not
    subprocesses = _subprocesses_by_task(root.workflow.top_workflow) if into_subprocesses else {}
    pending = [root]
    pop, extend = pending.pop, pending.extend
    while pending:
        task = pop()
        subprocess = subprocesses.get(id(task)) if subprocesses else None
        if subprocess is not None or (task._children and task._state >= lowest):
            extend(map(task.workflow.tasks.get, reversed(task._children)))
            if subprocess is not None:
                extend((subprocess.task_tree,))
        if task._state & state:
            yield task


def _subprocesses_by_task(top) -> dict:
    """Each sub-process under the task running it; the task may sit in another sub-process.

    A sub-process whose task is gone is left out, as the library's lookup by id would not meet it.
    """
    workflows = [top, *top.subprocesses.values()]
    found = {}
    for subprocess in top.subprocesses.values():
        for workflow in workflows:
            task = workflow.tasks.get(subprocess.parent_task_id)
            if task is not None:
                found[id(task)] = subprocess
                break
    return found


def _walkable(workflow) -> bool:
    top = workflow.top_workflow
    return len(top.tasks) + sum(len(sub.tasks) for sub in top.subprocesses.values()) < _WALKABLE_TASKS


class _Walks:
    """The two questions the engine asks most, answered by ``walk``; any other goes to the library."""

    def get_tasks(self, first_task=None, **kwargs):
        if kwargs.keys() <= {"state"} and _walkable(self):
            return list(walk(first_task or self.task_tree, kwargs.get("state", TaskState.ANY_MASK)))
        return super().get_tasks(first_task, **kwargs)

    def update_waiting_tasks(self):
        if not _walkable(self):
            return super().update_waiting_tasks()
        # the library's base iterator here: this workflow's own tasks, not its sub-processes'
        for task in walk(self.task_tree, TaskState.WAITING, into_subprocesses=False):
            task.task_spec._update(task)


class SubWorkflow(_Walks, BpmnSubWorkflow):
    """A sub-process of a case's workflow."""


class Workflow(_Walks, BpmnWorkflow):
    """A case's workflow; its sub-processes are ``SubWorkflow`` too."""

    def create_subprocess(self, my_task, spec_name):
        subprocess = SubWorkflow(self.subprocess_specs[spec_name], parent_task_id=my_task.id, top_workflow=self)
        self.subprocesses[my_task.id] = subprocess
        return subprocess
