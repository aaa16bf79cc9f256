"""Supervisor interventions: every one needs a reason and leaves an event on the case."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.api import require_login
from app.cases.schemas import CaseDetailSchema, TaskSchema
from app.supervision import services

PREFIX = ""
blp = Blueprint("api_interventions", __name__, description="Supervisor interventions")

_reason = fields.String(required=True, validate=validate.Length(1, 2000), metadata={"description": "why (on record)"})


class ReasonSchema(Schema):
    reason = _reason


class ReassignSchema(Schema):
    assignee_id = fields.Integer(required=True)
    reason = _reason


class ExtendSchema(Schema):
    due_at = fields.AwareDateTime(required=True, metadata={"description": "the new time limit, with offset"})
    reason = _reason


class LeaderSchema(Schema):
    leader_id = fields.Integer(required=True)
    reason = _reason


class OrderRequestSchema(Schema):
    instruction = fields.String(required=True, validate=validate.Length(1, 2000))
    due_at = fields.AwareDateTime(required=True, metadata={"description": "answer deadline (督办反馈期限)"})


class AnswerSchema(Schema):
    answer = fields.String(required=True, validate=validate.Length(1, 2000))


class OrderSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    instruction = fields.String()
    issued_at = fields.DateTime()
    due_at = fields.DateTime()
    status = fields.String()
    answer = fields.String(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)


def _detail(case):
    from app.api.disputes import _detail as detail

    return detail(case)


@blp.route("/tasks/<int:task_id>/reassign")
class Reassign(MethodView):
    @blp.arguments(ReassignSchema)
    @blp.response(200, TaskSchema)
    def post(self, payload, task_id):
        """Give an open task to another holder of its role (supervisor)."""
        return services.reassign_task(require_login(), task_id, payload["assignee_id"], payload["reason"])


@blp.route("/disputes/<int:case_id>/extend")
class Extend(MethodView):
    @blp.arguments(ExtendSchema)
    @blp.response(200, CaseDetailSchema)
    def post(self, payload, case_id):
        """Move the current tier's time limit later (supervisor)."""
        return _detail(services.extend_time_limit(require_login(), case_id, payload["due_at"], payload["reason"]))


@blp.route("/disputes/<int:case_id>/leader")
class Leader(MethodView):
    @blp.arguments(LeaderSchema)
    @blp.response(200, CaseDetailSchema)
    def post(self, payload, case_id):
        """Name the responsible leader of a major case (领导包案)."""
        return _detail(services.assign_leader(require_login(), case_id, payload["leader_id"], payload["reason"]))


def _case_action(name, doc):
    action = getattr(services, name)

    class Action(MethodView):
        @blp.arguments(ReasonSchema)
        @blp.response(200, CaseDetailSchema)
        def post(self, payload, case_id):
            return _detail(action(require_login(), case_id, payload["reason"]))

    Action.post.__doc__ = doc
    Action.__name__ = name.title().replace("_", "")
    return Action


blp.route("/disputes/<int:case_id>/suspend")(_case_action("suspend_case", "Pause the case; its time limits stand still."))
blp.route("/disputes/<int:case_id>/resume")(_case_action("resume_case", "Resume; time limits move on by the pause."))
blp.route("/disputes/<int:case_id>/withdraw")(_case_action("withdraw_case", "Close a case the parties withdrew."))


@blp.route("/disputes/<int:case_id>/supervision-orders")
class Orders(MethodView):
    @blp.arguments(OrderRequestSchema)
    @blp.response(201, OrderSchema)
    def post(self, payload, case_id):
        """Issue a supervision order (督办单) the handler must answer by its deadline."""
        return services.issue_supervision_order(require_login(), case_id, payload["instruction"], payload["due_at"])


@blp.route("/supervision-orders/<int:order_id>/answer")
class Answer(MethodView):
    @blp.arguments(AnswerSchema)
    @blp.response(200, OrderSchema)
    def post(self, payload, order_id):
        """The handler's feedback (督办反馈)."""
        return services.answer_supervision_order(require_login(), order_id, payload["answer"])
