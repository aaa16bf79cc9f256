"""Checking and moving a running workflow's state onto another version's spec (app.engine.migration).

No database: the shipped lifecycle and edited copies of it, run with the restricted engine.
"""
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import clock, engine
from app.cases.services import DIAGRAM_HELPERS
from tests.factories import failed, form_data

BUNDLE = Path(__file__).resolve().parents[2] / "workflows" / "dispute_lifecycle"
BPMN = {p.name: p.read_text("utf-8") for p in BUNDLE.glob("*.bpmn")}
DMN = {p.name: p.read_text("utf-8") for p in BUNDLE.glob("*.dmn")}
START = {"title": "t", "category": "neighbour", "risk_level": "low", "people_involved": 2, "time_limit_overrides": {}}


@pytest.fixture(autouse=True)
def fixed_clock():
    clock.set_clock(lambda: datetime(2026, 11, 2, 1, tzinfo=UTC))
    yield
    clock.set_clock(None)


@pytest.fixture(scope="module")
def v1():
    return engine.parse_bundle("dispute_lifecycle", BPMN, DMN)


def script_engine():
    return engine.create_script_engine(helpers=DIAGRAM_HELPERS)


def edited(**replacements):
    """The lifecycle with text replaced per file: ``village_mediation=[(old, new), ...]``."""
    files = dict(BPMN)
    for stem, changes in replacements.items():
        name = f"{stem}.bpmn"
        for old, new in changes:
            assert old in files[name], old
            files[name] = files[name].replace(old, new)
    return engine.parse_bundle("dispute_lifecycle", files, DMN)


def ready(instance):
    return sorted(t.spec_name for t in instance.ready_user_tasks())


def complete(instance, spec_name, data=None):
    task = next(t for t in instance.ready_user_tasks() if t.spec_name == spec_name)
    instance.complete(task.task_id, data if data is not None else form_data(spec_name))


def at_village(parsed):
    instance = engine.Instance.start(parsed, dict(START), script_engine())
    complete(instance, "intake_register")
    return instance


REVIEW_STEP = [
    ('<bpmn:flowNodeRef>village_end</bpmn:flowNodeRef>',
     '<bpmn:flowNodeRef>village_end</bpmn:flowNodeRef><bpmn:flowNodeRef>village_review</bpmn:flowNodeRef>'),
    ('<bpmn:sequenceFlow id="f_village_end" sourceRef="village_mediate" targetRef="village_end" />',
     '<bpmn:sequenceFlow id="f_village_end" sourceRef="village_mediate" targetRef="village_review" />'
     '<bpmn:userTask id="village_review" name="复核"><bpmn:incoming>f_village_end</bpmn:incoming>'
     '<bpmn:outgoing>f_review_end</bpmn:outgoing></bpmn:userTask>'
     '<bpmn:sequenceFlow id="f_review_end" sourceRef="village_review" targetRef="village_end" />'),
    ('<bpmn:incoming>f_village_end</bpmn:incoming>\n    </bpmn:endEvent>',
     '<bpmn:incoming>f_review_end</bpmn:incoming>\n    </bpmn:endEvent>'),
]


def renamed(old_id, new_id):
    return [(f'id="{old_id}"', f'id="{new_id}"'), (f'Ref="{old_id}"', f'Ref="{new_id}"'),
            (f">{old_id}<", f">{new_id}<")]


def test_a_case_moves_onto_a_version_with_a_new_step_ahead_and_takes_it(v1):
    target = edited(village_mediation=REVIEW_STEP)
    instance = at_village(v1)
    moved, plan = engine.migrate(instance.dump(), v1, target, script_engine())
    assert plan.ok and plan.refusals == [] and "village_mediate" in plan.active
    assert ready(moved) == ["village_mediate"]
    complete(moved, "village_mediate")
    assert ready(moved) == ["village_review"], "the new step comes next"
    reloaded = engine.Instance.load(target, moved.dump(), script_engine())
    complete(reloaded, "village_review", {})
    assert ready(reloaded) == ["follow_up_visit"]


def test_an_unchanged_spec_leaves_the_state_byte_for_byte(v1):
    state = at_village(v1).dump()
    moved, plan = engine.migrate(state, v1, v1, script_engine())
    assert plan.ok and plan.changes == [] and plan.dropped == []
    assert moved.dump() == state


def test_an_active_step_the_new_version_removed_refuses_the_move(v1):
    target = edited(village_mediation=renamed("village_mediate", "village_mediate_v2"))
    state = at_village(v1).dump()
    plan = engine.plan_migration(state, v1, target, script_engine())
    assert not plan.ok
    assert plan.refusals == ["step 村(社)调解 (village_mediate) is active in this case but the new version removed it"]
    with pytest.raises(engine.MigrationRefused):
        engine.migrate(state, v1, target, script_engine())


def test_a_completed_step_the_new_version_removed_refuses_the_move(v1):
    target = edited(dispute_lifecycle=renamed("intake_register", "intake_check"))
    plan = engine.plan_migration(at_village(v1).dump(), v1, target, script_engine())
    assert not plan.ok and any("intake_register" in r and "was completed" in r for r in plan.refusals)
    # a case still waiting for registration is at that step: refused as active
    waiting = engine.Instance.start(v1, dict(START), script_engine())
    assert any("is active" in r for r in engine.plan_migration(waiting.dump(), v1, target, script_engine()).refusals)


def test_a_case_before_the_changed_part_moves_and_runs_the_new_diagram(v1):
    target = edited(village_mediation=renamed("village_mediate", "village_mediate_v2"))
    waiting = engine.Instance.start(v1, dict(START), script_engine())
    moved, plan = engine.migrate(waiting.dump(), v1, target, script_engine())
    assert plan.ok
    complete(moved, "intake_register")
    assert ready(moved) == ["village_mediate_v2"]


def test_a_changed_timer_keeps_its_due_time_and_says_so(v1):
    target = edited(dispute_lifecycle=[('duration_of(time_limits["village"])', '"P7D"')])
    instance = at_village(v1)
    due = {t.spec_name: t.due_at for t in instance.pending_timers()}
    moved, plan = engine.migrate(instance.dump(), v1, target, script_engine())
    assert any("village_time_limit" in c and "keeps its due time" in c for c in plan.changes)
    assert {t.spec_name: t.due_at for t in moved.pending_timers()} == due


def test_a_changed_form_on_the_active_task_is_described(v1):
    target = edited(village_mediation=[('value="village_mediate.schema.json"', 'value="village_mediate_v2.schema.json"')])
    plan = engine.plan_migration(at_village(v1).dump(), v1, target, script_engine())
    assert plan.ok and plan.changes == [
        "active step 村(社)调解 (village_mediate): form 'village_mediate.schema.json' → 'village_mediate_v2.schema.json'"]


def test_a_call_activity_that_now_calls_another_process_refuses_the_move(v1):
    target = edited(dispute_lifecycle=[('calledElement="village_mediation"', 'calledElement="town_mediation"')])
    plan = engine.plan_migration(at_village(v1).dump(), v1, target, script_engine())
    assert not plan.ok and any("calls town_mediation" in r for r in plan.refusals)


def test_a_state_is_checked_without_the_source_spec_too(v1):
    target = edited(village_mediation=renamed("village_mediate", "village_mediate_v2"))
    plan = engine.plan_migration(at_village(v1).dump(), None, target, script_engine())
    assert not plan.ok and "village_mediate" in plan.refusals[0]


def test_predicted_steps_of_removed_branches_are_dropped_and_replanned(v1):
    """A case at the village stage: its look-ahead holds the escalation step the target renames."""
    target = edited(dispute_lifecycle=renamed("escalate_after_failure", "escalate_failed"))
    instance = at_village(v1)
    state = json.loads(instance.dump())
    assert any(t["task_spec"] == "escalate_after_failure" and t["state"] in (1, 2, 4) for t in state["tasks"].values())
    moved, plan = engine.migrate(instance.dump(), v1, target, script_engine())
    assert plan.ok and any("escalate_after_failure" in d for d in plan.dropped)
    complete(moved, "village_mediate", failed("village_mediate"))
    assert ready(moved) == ["town_dispatch"], "the renamed escalation step ran"
    assert moved.variables()["escalation_count"] == 1
    assert engine.compare_versions(v1, target) == {"added": ["escalate_failed"], "removed": ["escalate_after_failure"]}
