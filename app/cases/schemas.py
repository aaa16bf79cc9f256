"""marshmallow schemas shaping cases, tasks and events in the JSON API."""
from marshmallow import Schema, fields, validate

from app.cases.catalog import CATEGORIES, CHANNELS, RISK_LEVELS, TIERS
from app.cases.queries import time_left


class PartySchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 80))
    party_role = fields.String(
        required=True, validate=validate.OneOf(["applicant", "respondent", "third_party"]))
    phone = fields.String(validate=validate.Regexp(r"^\+?[0-9][0-9-]{0,19}$"))
    id_number = fields.String(validate=validate.Length(max=18))


class NewCaseSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(2, 200))
    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES)))
    description = fields.String(required=True, validate=validate.Length(1, 5000))
    org_unit_id = fields.Integer(required=True, metadata={"description": "village/community or grid"})
    channel = fields.String(load_default="walk_in", validate=validate.OneOf(list(CHANNELS)))
    risk_level = fields.String(load_default="low", validate=validate.OneOf(list(RISK_LEVELS)))
    people_involved = fields.Integer(load_default=2, validate=validate.Range(1, 100000))
    parties = fields.List(fields.Nested(PartySchema), load_default=list)
    location = fields.String(validate=validate.Length(max=200), load_default=None)
    reporter_name = fields.String(validate=validate.Length(max=80), load_default=None)
    reporter_phone = fields.String(validate=validate.Regexp(r"^\+?[0-9][0-9-]{0,19}$"), load_default=None)
    time_limit_overrides = fields.Dict(
        keys=fields.String(), values=fields.String(), load_default=dict,
        metadata={"description": 'ISO-8601 durations overriding the diagram defaults, e.g. {"village": "P7D"}'},
    )


class CaseQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(["intake", "open", "closed"]))
    tier = fields.String(validate=validate.OneOf(list(TIERS)))
    category = fields.String(validate=validate.OneOf(list(CATEGORIES)))
    overdue = fields.Boolean()
    q = fields.String(validate=validate.Length(max=100))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(1, 200))


class InboxQuerySchema(Schema):
    scope = fields.String(load_default="all", validate=validate.OneOf(["all", "mine", "claimable"]))
    tier = fields.String(validate=validate.OneOf(list(TIERS)))
    category = fields.String(validate=validate.OneOf(list(CATEGORIES)))
    overdue = fields.Boolean()
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(1, 200))


class OrgUnitRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    level = fields.Function(lambda unit: unit.level.value)


class UserRefSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()


class CaseSummarySchema(Schema):
    id = fields.Integer()
    number = fields.String()
    title = fields.String()
    category = fields.String()
    channel = fields.String()
    risk_level = fields.String()
    status = fields.String()
    current_tier = fields.String(allow_none=True)
    resolved_tier = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    org_unit = fields.Nested(OrgUnitRefSchema)
    opened_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)


class TaskSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    case_number = fields.Function(lambda task: task.case.number)
    title = fields.String()
    spec_name = fields.String()
    lane = fields.String()
    tier = fields.String()
    status = fields.String()
    org_unit_id = fields.Integer()
    assignee = fields.Nested(UserRefSchema, allow_none=True)
    created_at = fields.DateTime()
    claimed_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    seconds_left = fields.Function(lambda task: time_left(task.due_at), allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    end_reason = fields.String(allow_none=True)
    form = fields.String(attribute="form_name", allow_none=True)


class EventSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    kind = fields.String()
    message = fields.String()
    actor = fields.Nested(UserRefSchema, allow_none=True)
    task_id = fields.String(allow_none=True)
    data = fields.Dict(allow_none=True)


class CaseDetailSchema(CaseSummarySchema):
    description = fields.String()
    people_involved = fields.Integer()
    parties = fields.List(fields.Dict())
    location = fields.String(allow_none=True)
    start_tier = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    satisfaction = fields.String(allow_none=True)
    is_major = fields.Boolean()
    escalation_count = fields.Integer()
    reopen_count = fields.Integer()
    process = fields.Function(lambda case: {
        "key": case.process_version.key, "version": case.process_version.version})
    lock_version = fields.Integer(metadata={"description": "moves on with every change to the case, its tasks "
                                                           "or timers: a client can tell it shows an old state"})
    open_tasks = fields.List(fields.Nested(TaskSchema))
    events = fields.List(fields.Nested(EventSchema))


class CompleteTaskSchema(Schema):
    data = fields.Dict(required=True, metadata={"description": "values for the task's JSON-Schema form"})


class TaskDetailSchema(TaskSchema):
    case = fields.Nested(CaseSummarySchema)


class FormSchema(Schema):
    name = fields.String(allow_none=True)
    schema = fields.Dict()
    data = fields.Dict(metadata={"description": "current values to prefill (case data, draft)"})


def page_schema(item_schema):
    class _Page(Schema):
        items = fields.List(fields.Nested(item_schema))
        total = fields.Integer()
        page = fields.Integer()
        per_page = fields.Integer()

    _Page.__name__ = f"{item_schema.__name__.removesuffix('Schema')}PageSchema"
    return _Page


CasePageSchema = page_schema(CaseSummarySchema)
TaskPageSchema = page_schema(TaskSchema)
