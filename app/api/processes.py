"""Deployed process versions (read-only here; deployment arrives with the authoring work)."""
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api import require_login
from app.processes import services

PREFIX = "/process-versions"
blp = Blueprint("api_processes", __name__, description="Process versions")


class ProcessVersionSchema(Schema):
    id = fields.Integer()
    key = fields.String()
    version = fields.Integer()
    content_hash = fields.String()
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    files = fields.Function(lambda v: [{"name": f.name, "kind": f.kind} for f in v.files])


@blp.route("")
class Versions(MethodView):
    @blp.response(200, ProcessVersionSchema(many=True))
    def get(self):
        require_login()
        return services.list_versions()
