"""Run the shipped lifecycle diagrams (workflows/dispute_lifecycle) along every path.

No database: the engine adapter alone, with the restricted script engine, a controllable clock,
and a save/restore round trip after every step that must change nothing. Beside every instance
runs a twin on the library's own workflow classes (its task iterators, its loader): after every
step both trees must be the same.
"""
import json
from datetime import UTC, datetime, timedelta

import pytest
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskIterator, TaskState

from app import clock, engine
from app.engine import runtime, walks
from tests.factories import failed, form_data

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def script_engine():
    """The restricted engine with the app's diagram helpers (working-day time limits)."""
    from app.cases.services import DIAGRAM_HELPERS

    return engine.create_script_engine(helpers=DIAGRAM_HELPERS)


# The library's own task and sub-workflow converters (full data copy per task) with our
# state-only workflow converter: the reference the sharing converter must agree with.
_STOCK = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, BpmnWorkflow: runtime._StateOnlyConverter}))


def _all_tasks(workflow):
    yield from workflow.tasks.values()
    for sub in workflow.subprocesses.values():
        yield from sub.tasks.values()


def assert_loads_like_the_library(parsed, state: str, instance) -> None:
    """Every task's data, state and links equal what the library's own loader makes."""
    dct = json.loads(state)
    _STOCK.migrate(dct)
    reference = _STOCK.from_dict(dct, spec=parsed.spec, subprocess_specs=parsed.subprocess_specs)
    ours = {t.id: t for t in _all_tasks(instance.workflow)}
    theirs = {t.id: t for t in _all_tasks(reference)}
    assert ours.keys() == theirs.keys()
    for task_id, task in ours.items():
        other = theirs[task_id]
        assert (task.state, task._parent, task._children, task.internal_data) == \
            (other.state, other._parent, other._children, other.internal_data)
        assert task.data == other.data, f"{task.task_spec.name}: data differs from the library's load"
    assert instance.workflow.data == reference.data


_MASKS = (TaskState.ANY_MASK, TaskState.READY, TaskState.WAITING, TaskState.NOT_FINISHED_MASK,
          TaskState.PREDICTED_MASK, TaskState.FINISHED_MASK, TaskState.READY | TaskState.WAITING | TaskState.STARTED)


def assert_walks_like_the_library(workflow) -> None:
    """``walks.walk`` yields what the library's iterators yield, in their order, for every mask."""
    workflows = [workflow, *workflow.subprocesses.values()]
    for mask in _MASKS:
        for each in workflows:
            assert list(walks.walk(each.task_tree, mask)) == list(BpmnTaskIterator(each.task_tree, state=mask)), \
                f"{TaskState.get_name(mask)} from {each.task_tree.task_spec.name}"
            assert list(walks.walk(each.task_tree, mask, into_subprocesses=False)) == \
                list(TaskIterator(each.task_tree, state=mask))


def _shape(workflow) -> list:
    """The whole tree in the library's own order: every task's spec, state and data."""
    return [(t.task_spec.name, TaskState.get_name(t.state), t.data) for t in BpmnTaskIterator(workflow.task_tree)]


class Driver:
    """Drive one instance like the service does: step, save, reload."""

    def __init__(self, parsed, now):
        self.parsed, self.now = parsed, now

    def start(self, **intake):
        data = {"title": "t", "category": "neighbour", "risk_level": "low", "people_involved": 2,
                "time_limit_overrides": intake.pop("time_limit_overrides", {})}
        self.instance = engine.Instance.start(self.parsed, data, script_engine())
        assert isinstance(self.instance.workflow, walks.Workflow)
        self.twin = BpmnWorkflow(self.parsed.spec, self.parsed.subprocess_specs, script_engine=script_engine())
        for task in BpmnTaskIterator(self.twin.task_tree, state=TaskState.READY):
            task.data.update(data)
        self.twin.do_engine_steps()
        self._round_trip()
        self.complete("intake_register", form_data("intake_register", **intake))
        return self

    def _round_trip(self):
        before = self.instance.dump()
        self.instance = engine.Instance.load(self.parsed, before, script_engine())
        assert_loads_like_the_library(self.parsed, before, self.instance)
        assert self.instance.dump() == before, "save/restore changed the state"
        assert_walks_like_the_library(self.instance.workflow)
        dct = json.loads(_STOCK.serialize_json(self.twin))
        self.twin = _STOCK.from_dict(dct, spec=self.parsed.spec, subprocess_specs=self.parsed.subprocess_specs)
        self.twin.script_engine = script_engine()
        assert type(self.twin) is BpmnWorkflow
        assert _shape(self.instance.workflow) == _shape(self.twin), "the library's own classes took another path"
        assert self.instance.workflow.completed == self.twin.completed

    @property
    def ready(self) -> list[str]:
        return sorted(t.spec_name for t in self.instance.ready_user_tasks())

    @property
    def var(self) -> dict:
        return self.instance.variables()

    def complete(self, spec_name, data=None):
        matches = [t for t in self.instance.ready_user_tasks() if t.spec_name == spec_name]
        assert matches, f"{spec_name} is not ready; ready: {self.ready}"
        data = data if data is not None else form_data(spec_name)
        self.instance.complete(matches[0].task_id, data)
        twin = next(t for t in BpmnTaskIterator(self.twin.task_tree, state=TaskState.READY)
                    if t.task_spec.name == spec_name)
        twin.data.update(data)
        twin.run()
        self.twin.do_engine_steps()
        self._round_trip()

    def advance(self, **delta):
        self.now[0] += timedelta(**delta)
        fired = self.instance.fire_due_timers()
        self.twin.refresh_timers()
        self.twin.do_engine_steps()
        self._round_trip()
        return fired

    def timers(self) -> dict[str, datetime]:
        return {t.spec_name: t.due_at for t in self.instance.pending_timers()}


@pytest.fixture
def drive(parsed):
    now = [START]
    clock.set_clock(lambda: now[0])
    yield Driver(parsed, now)
    clock.set_clock(None)


def test_resolved_at_village_then_closed(drive):
    drive.start()
    assert drive.ready == ["village_mediate"]
    assert drive.var["tier"] == "village" and drive.var["department"] == "村(社)人民调解委员会"
    drive.complete("village_mediate")
    assert drive.ready == ["follow_up_visit"]
    drive.complete("follow_up_visit")
    assert drive.instance.completed
    assert (drive.var["outcome"], drive.var["resolved_tier"], drive.var["escalation_count"]) == ("resolved", "village", 0)


def test_not_accepted_ends_at_intake(drive):
    drive.start(accepted=False, rejection_reason="不属于人民调解受理范围")
    assert drive.instance.completed and drive.var["outcome"] == "not_accepted"
    assert drive.instance.pending_timers() == []


def test_village_fails_town_succeeds(drive):
    drive.start()
    drive.complete("village_mediate", failed("village_mediate"))
    assert drive.ready == ["town_dispatch"]
    assert (drive.var["tier"], drive.var["escalation_reason"]) == ("town", "mediation_failed")
    drive.complete("town_dispatch")
    drive.complete("town_mediate")
    drive.complete("follow_up_visit")
    assert drive.var["resolved_tier"] == "town" and drive.var["escalation_count"] == 1


def test_town_refers_to_county_which_resolves_with_consultation_and_leader(drive):
    drive.start()
    drive.complete("village_mediate", failed("village_mediate"))
    drive.complete("town_dispatch", form_data("town_dispatch", dispatch_action="refer_county"))
    assert drive.ready == ["county_accept"] and drive.var["tier"] == "county"
    drive.complete("county_accept", form_data("county_accept", is_major=True, leader_name="县委副书记"))
    assert drive.ready == ["consult_justice", "consult_petition"], "the consultation runs in parallel"
    drive.complete("consult_petition")
    assert drive.ready == ["consult_justice"]
    drive.complete("consult_justice")
    assert drive.ready == ["leader_instruction"], "a major case gets a named leader's instruction"
    drive.complete("leader_instruction")
    drive.complete("county_mediate")
    drive.complete("follow_up_visit")
    data = drive.var
    assert data["resolved_tier"] == "county" and data["is_major"] is True
    assert data["justice_opinion"] and data["petition_opinion"], "both branches' data survive the join"


def test_every_tier_fails_into_litigation_and_a_ruling(drive):
    drive.start()
    drive.complete("village_mediate", failed("village_mediate"))
    drive.complete("town_dispatch")
    drive.complete("town_mediate", failed("town_mediate"))
    drive.complete("county_accept")
    drive.complete("consult_justice")
    drive.complete("consult_petition")
    assert drive.ready == ["county_mediate"], "no leader step for an ordinary case"
    drive.complete("county_mediate", failed("county_mediate"))
    assert drive.ready == ["court_premediation"] and drive.var["tier"] == "court"
    drive.complete("court_premediation")
    drive.complete("court_filing")
    drive.complete("court_ruling")
    assert drive.instance.completed
    assert (drive.var["outcome"], drive.var["resolved_tier"], drive.var["escalation_count"]) == ("litigated", "court", 3)


def test_pre_litigation_mediation_settles_and_is_followed_up(drive):
    drive.start(category="labour")
    drive.complete("county_accept")
    drive.complete("consult_justice")
    drive.complete("consult_petition")
    drive.complete("county_mediate", failed("county_mediate"))
    drive.complete("court_premediation", form_data("court_premediation", premediation_result="settled",
                                                   agreement_summary="被告支付工资差额"))
    assert drive.ready == ["follow_up_visit"], "a court settlement needs no judicial confirmation"
    drive.complete("follow_up_visit")
    assert (drive.var["outcome"], drive.var["resolved_tier"]) == ("resolved", "court")


def test_judicial_confirmation_after_a_village_agreement(drive):
    drive.start()
    drive.complete("village_mediate", form_data("village_mediate", wants_judicial_confirmation=True))
    assert drive.ready == ["judicial_confirmation"]
    assert drive.timers()["confirmation_window"] == START + timedelta(days=30)
    drive.complete("judicial_confirmation")
    assert drive.ready == ["follow_up_visit"] and drive.timers() == {}
    assert drive.var["confirmation_decision"] == "confirmed"


def test_judicial_confirmation_window_lapses_after_30_days(drive):
    drive.start()
    drive.complete("village_mediate", form_data("village_mediate", wants_judicial_confirmation=True))
    assert drive.advance(days=29) == []
    fired = drive.advance(days=1, seconds=1)
    assert len(fired) == 1
    assert drive.ready == ["follow_up_visit"] and drive.var["confirmation_status"] == "lapsed"


def test_dissatisfied_party_reopens_at_the_resolving_tier(drive):
    drive.start()
    drive.complete("village_mediate", failed("village_mediate"))
    drive.complete("town_dispatch")
    drive.complete("town_mediate")
    drive.complete("follow_up_visit", form_data("follow_up_visit", satisfaction="dissatisfied",
                                                visit_notes="协议未履行"))
    assert drive.ready == ["town_dispatch"], "reopened at the town, not back at the village"
    assert (drive.var["tier"], drive.var["reopen_count"], drive.var["resolved_tier"]) == ("town", 1, None)
    drive.complete("town_dispatch")
    drive.complete("town_mediate")
    drive.complete("follow_up_visit")
    assert drive.var["outcome"] == "resolved" and drive.var["reopen_count"] == 1


@pytest.mark.parametrize("tier_days", [("village", 15), ("town", 15), ("county", 30)])
def test_reminder_then_time_limit_escalates_each_tier(drive, tier_days):
    tier, limit_days = tier_days
    categories = {"village": "neighbour", "town": "pollution", "county": "labour"}
    drive.start(category=categories[tier])
    assert drive.var["tier"] == tier
    timers = drive.timers()
    reminder, limit = timers[f"{tier}_reminder"], timers[f"{tier}_time_limit"]
    assert limit == START + timedelta(days=limit_days) and reminder < limit

    ready_before = drive.ready
    drive.now[0] = reminder - timedelta(seconds=1)
    assert drive.advance() == [], "nothing fires a second early"
    assert len(drive.advance(seconds=2)) == 1
    assert drive.ready == ready_before, "a reminder does not interrupt the work"
    assert set(drive.timers()) == {f"{tier}_time_limit"}

    drive.now[0] = limit
    drive.advance(seconds=1)
    next_tier = {"village": "town", "town": "county", "county": "court"}[tier]
    assert (drive.var["tier"], drive.var["escalation_reason"]) == (next_tier, "time_limit")
    assert not set(ready_before) & set(drive.ready), "the escalated tier's tasks are gone"


def test_time_limit_overrides_change_the_deadline(drive):
    drive.start(time_limit_overrides={"village": "P7D", "village_reminder": "P5D"})
    assert drive.timers() == {"village_reminder": START + timedelta(days=5),
                              "village_time_limit": START + timedelta(days=7)}


def test_completing_a_task_cancelled_by_the_time_limit_is_refused(drive):
    drive.start()
    village_task = drive.instance.ready_user_tasks()[0].task_id
    drive.advance(days=16)
    with pytest.raises(engine.TaskNotReady) as caught:
        drive.instance.complete(village_task, form_data("village_mediate"))
    assert caught.value.state == "CANCELLED"


@pytest.mark.parametrize(
    "intake, tier",
    [
        ({"category": "neighbour"}, "village"),
        ({"category": "neighbour", "risk_level": "medium"}, "town"),
        ({"category": "land_requisition"}, "town"),
        ({"category": "neighbour", "risk_level": "high"}, "county"),
        ({"category": "neighbour", "people_involved": 30}, "county"),
        ({"category": "medical"}, "county"),
    ],
)
def test_triage_routes_by_category_risk_and_people(drive, intake, tier):
    drive.start(**intake)
    assert drive.var["tier"] == tier and drive.var["start_tier"] == tier
    first = {"village": ["village_mediate"], "town": ["town_dispatch"], "county": ["county_accept"]}[tier]
    assert drive.ready == first


def test_instance_state_leaves_the_definition_out(drive):
    drive.start()
    state = drive.instance.dump()
    # Sub-workflows name their spec ("spec": "village_mediation"); no task spec is stored.
    assert "task_specs" not in state and '"typename": "BpmnProcessSpec"' not in state
    assert len(state) < 20_000


def test_time_limits_in_working_days_follow_the_holiday_calendar(drive):
    from app.scheduling import calendar

    holidays, workdays = calendar.parse_calendar_file(calendar.SHIPPED[0].read_text("utf-8"))
    calendar.install(calendar.WorkingCalendar(frozenset(holidays), frozenset(workdays)))
    try:
        drive.now[0] = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
        drive.start(time_limit_overrides={"village": "3WD", "village_reminder": "1WD"})
        timers = drive.timers()
        # 1 working day after 30 Sep is 8 Oct (National Day); 3 are 8, 9 and the adjusted Sat 10.
        assert timers["village_reminder"] == datetime(2026, 10, 8, 2, 0, tzinfo=UTC)
        assert timers["village_time_limit"] == datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    finally:
        calendar.install(calendar.WorkingCalendar())


def test_loaded_finished_tasks_share_data_and_running_tasks_get_their_own(drive):
    drive.start()
    drive.complete("village_mediate", failed("village_mediate"))
    drive.complete("town_dispatch")
    tasks = list(_all_tasks(drive.instance.workflow))
    finished = [t for t in tasks if t.state & TaskState.FINISHED_MASK and t.parent is not None
                and t.parent.state & TaskState.FINISHED_MASK]
    shared = [t for t in finished if t.data is t.parent.data]
    assert len(shared) >= len(finished) // 2, "finished tasks should reuse their parent's data on load"
    ready = next(t for t in tasks if t.task_spec.name == "town_mediate" and t.state == TaskState.READY)
    assert ready.data is not ready.parent.data
    before = dict(ready.parent.data)
    ready.data["town_notes"] = "changed after load"
    assert ready.parent.data == before, "a running task's data must not write through to finished ones"
