"""The one shape of every API error body, documented in OpenAPI as each operation's default."""
from datetime import datetime

from flask_smorest.error_handler import ErrorSchema as SmorestErrorSchema
from marshmallow import Schema, fields


class ProblemSchema(Schema):
    element_id = fields.String(allow_none=True, metadata={"description": "BPMN/DMN element at fault"})
    file = fields.String(allow_none=True)
    line = fields.Integer(allow_none=True)
    message = fields.String()
    severity = fields.String(metadata={"description": "error (blocks a deployment) or warning"})


class ApiErrorSchema(SmorestErrorSchema):
    """flask-smorest's error body (code = HTTP status) plus what a domain error adds."""

    reason = fields.String(metadata={"description": "why a 409 conflict happened, e.g. already_completed, "
                                                    "claimed_by_other, escalated_by_time_limit, suspended"})
    at = fields.DateTime(metadata={"description": "when the case moved on (409)"})
    retry_after = fields.Integer(metadata={"description": "seconds to wait (429), also sent as Retry-After"})
    field = fields.String(metadata={"description": "the request field that named something missing"})
    element_id = fields.String(metadata={"description": "the diagram element whose code failed (422)"})
    problems = fields.List(fields.Nested(ProblemSchema), metadata={"description": "every problem of a bundle"})


def error_body(exc) -> dict:
    """The JSON body for a DomainError: its HTTP status as ``code``, its own ``code`` as ``reason``."""
    from app.errors import InvalidInput

    body = {"code": exc.status, "status": type(exc).__name__, "message": exc.message}
    if isinstance(exc, InvalidInput):
        body["errors"] = exc.errors
    for key, value in exc.details.items():
        if value is not None:
            body["reason" if key == "code" else key] = value.isoformat() if isinstance(value, datetime) else value
    return body
