"""app/engine/walks.py answers the engine's task questions as the library's iterators would.

Every path of the shipped lifecycle checks the walks against the library after each step and
runs a twin on the library's own classes (tests/unit/test_lifecycle_paths.py); these tests pin
what those paths cannot tell apart.
"""

import pytest
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.util.task import TaskState
from SpiffWorkflow.workflow import Workflow as LibraryWorkflow

from app import engine
from app.cases.services import DIAGRAM_HELPERS
from app.engine import walks
from tests.factories import form_data


def _complete(instance, spec_name, **data):
    task = next(t for t in instance.ready_user_tasks() if t.spec_name == spec_name)
    instance.complete(task.task_id, form_data(spec_name, **data))


def _registered(parsed, category: str):
    data = {"title": "t", "category": category, "risk_level": "low", "people_involved": 2, "time_limit_overrides": {}}
    instance = engine.Instance.start(parsed, data, engine.create_script_engine(helpers=DIAGRAM_HELPERS))
    _complete(instance, "intake_register", category=category)
    return instance


def _at_village_mediation(parsed) -> str:
    instance = _registered(parsed, "neighbour")
    assert [t.spec_name for t in instance.ready_user_tasks()] == ["village_mediate"]
    return instance.dump()


def _half_way_through_the_county_consultation(parsed) -> str:
    """A labour dispute goes straight to the county; one of its two consultations is done, so the
    join inside the county's sub-process waits, and the county's timers wait in the top workflow."""
    instance = _registered(parsed, "labour")
    _complete(instance, "county_accept")
    _complete(instance, "consult_petition")
    assert [t.spec_name for t in instance.ready_user_tasks()] == ["consult_justice"]
    return instance.dump()


def _updated_by(update_waiting_tasks, workflow, monkeypatch) -> list:
    updated = []
    original = TaskSpec._update

    def recording(spec, task):
        updated.append(task.id)
        return original(spec, task)

    monkeypatch.setattr(TaskSpec, "_update", recording)
    update_waiting_tasks(workflow)
    monkeypatch.setattr(TaskSpec, "_update", original)
    return updated


def test_waiting_tasks_are_updated_in_their_own_workflow_only_as_the_library_does(parsed, monkeypatch):
    state = _half_way_through_the_county_consultation(parsed)
    ours = engine.Instance.load(parsed, state, None).workflow
    theirs = engine.Instance.load(parsed, state, None).workflow
    pairs = [(ours, theirs)] + [(ours.subprocesses[k], theirs.subprocesses[k]) for k in ours.subprocesses]
    updated = []
    for mine, reference in pairs:
        expected = _updated_by(LibraryWorkflow.update_waiting_tasks, reference, monkeypatch)
        assert _updated_by(type(mine).update_waiting_tasks, mine, monkeypatch) == expected
        updated.append(len(expected))
    # the top workflow updates its own two timers, the county's sub-process its join
    assert updated[0] == 2 and sum(updated[1:]) == 1
    assert len(theirs.get_tasks(state=TaskState.WAITING)) == 3


def test_a_tree_beyond_the_walkable_size_is_left_to_the_library(parsed, monkeypatch):
    workflow = engine.Instance.load(parsed, _at_village_mediation(parsed), None).workflow
    expected = workflow.get_tasks(state=TaskState.WAITING)
    walked = []
    monkeypatch.setattr(walks, "walk", lambda *args, **kwargs: walked.append(args) or iter(()))
    monkeypatch.setattr(walks, "_WALKABLE_TASKS", len(workflow.tasks))
    assert workflow.get_tasks(state=TaskState.WAITING) == expected and walked == []


def test_questions_with_other_filters_go_to_the_library(parsed, monkeypatch):
    workflow = engine.Instance.load(parsed, _at_village_mediation(parsed), None).workflow
    monkeypatch.setattr(walks, "walk", lambda *args, **kwargs: pytest.fail("walk answered a filtered question"))
    ready = workflow.get_tasks(state=TaskState.READY, spec_name="village_mediate")
    assert [t.task_spec.name for t in ready] == ["village_mediate"]
