"""In-app notifications: list, unread count, mark read."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api import require_login
from app.notifications import services

PREFIX = "/notifications"
blp = Blueprint("api_notifications", __name__, description="Notifications")


class NotificationSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    kind = fields.String()
    message = fields.String()
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotificationListSchema(Schema):
    unread = fields.Integer()
    items = fields.List(fields.Nested(NotificationSchema))


class NotificationQuerySchema(Schema):
    unread_only = fields.Boolean(load_default=False)


class MarkedSchema(Schema):
    marked = fields.Integer()


@blp.route("")
class Notifications(MethodView):
    @blp.arguments(NotificationQuerySchema, location="query")
    @blp.response(200, NotificationListSchema)
    def get(self, args):
        """My newest notifications and how many are unread."""
        user = require_login()
        return {"unread": services.unread_count(user), "items": services.list_for(user, args["unread_only"])}


@blp.route("/read")
class ReadAll(MethodView):
    @blp.response(200, MarkedSchema)
    def post(self):
        return {"marked": services.mark_read(require_login())}


@blp.route("/<int:notification_id>/read")
class ReadOne(MethodView):
    @blp.response(200, MarkedSchema)
    def post(self, notification_id):
        return {"marked": services.mark_read(require_login(), notification_id)}
