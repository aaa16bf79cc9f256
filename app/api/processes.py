"""Process versions for integrators: deploy bundles, read and compare versions, map regions to
variants, migrate running cases.

Deploying, mapping and migrating need the ``integrator`` role (403 otherwise); reading versions
needs a login. A bundle that fails validation answers 422 with every problem in ``problems``
(``element_id``, ``file``, ``message``, ``severity``) and the errors by element in ``errors``.
"""
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate

from app.api import require_login
from app.processes import services

PREFIX = "/process-versions"
blp = Blueprint("api_processes", __name__, description="Process versions, variants and migration")


class FileSchema(Schema):
    name = fields.String()
    kind = fields.String(metadata={"description": "bpmn, dmn or form"})
    size = fields.Function(lambda f: len(f.content.encode("utf-8")))


class FileContentSchema(FileSchema):
    content = fields.String()


class ProcessVersionSchema(Schema):
    id = fields.Integer()
    key = fields.String()
    version = fields.Integer()
    process_id = fields.Function(lambda v: v.top_process_id)
    content_hash = fields.String()
    note = fields.String(allow_none=True)
    author = fields.Function(lambda v: v.author.username if v.author else None)
    created_at = fields.DateTime()
    files = fields.List(fields.Nested(FileSchema))


class ProcessVersionDetailSchema(ProcessVersionSchema):
    files = fields.List(fields.Nested(FileContentSchema))


class DeployedSchema(ProcessVersionSchema):
    created = fields.Boolean(metadata={"description": "false: identical content was already the latest version"})
    warnings = fields.List(fields.Dict())


class DeployJsonSchema(Schema):
    key = fields.String(required=True, validate=validate.Regexp(services.KEY.pattern),
                        metadata={"description": "process key to deploy as, e.g. dispute_lifecycle_7day"})
    files = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"description": "file name → content (.bpmn, .dmn, .json forms)"})
    process_id = fields.String(load_default=None, metadata={"description": "BPMN process to run (default: key)"})
    note = fields.String(load_default=None, validate=validate.Length(max=2000))


class DiffSchema(Schema):
    file = fields.String()
    kind = fields.String()
    status = fields.String(metadata={"description": "added, removed, changed (or process)"})
    diff = fields.String(metadata={"description": "unified diff"})


class VariantSchema(Schema):
    org_unit = fields.Function(lambda v: v.org_unit.code)
    org_unit_name = fields.Function(lambda v: v.org_unit.name)
    key = fields.String()
    version = fields.Function(lambda v: v.version.version if v.version else None,
                              metadata={"description": "pinned version; null follows the latest"})
    note = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class VariantRequestSchema(Schema):
    key = fields.String(required=True)
    version = fields.Integer(load_default=None, metadata={"description": "pin a version (default: the latest)"})
    note = fields.String(load_default=None, validate=validate.Length(max=2000))


class MigrateRequestSchema(Schema):
    dry_run = fields.Boolean(required=True, metadata={"description": "true: only report what would change"})
    case_ids = fields.List(fields.Integer(), load_default=None,
                           metadata={"description": "default: every open case on another version of the process"})
    from_version_id = fields.Integer(load_default=None, metadata={"description": "only cases on this version"})


class MigrationReportSchema(Schema):
    case_id = fields.Integer()
    number = fields.String()
    # data_key: "from" is a Python keyword
    from_version = fields.String(data_key="from", attribute="from")
    to = fields.String()
    ok = fields.Boolean()
    migrated = fields.Boolean()
    dry_run = fields.Boolean()
    refusals = fields.List(fields.String())
    dropped = fields.List(fields.String())
    changes = fields.List(fields.String())
    active = fields.List(fields.String())


class MigrationSchema(Schema):
    dry_run = fields.Boolean()
    target = fields.Nested(ProcessVersionSchema)
    added_steps = fields.List(fields.String())
    removed_steps = fields.List(fields.String())
    cases = fields.List(fields.Nested(MigrationReportSchema))


class _Deployed:
    """A deployed version plus whether it is new and the warnings validation found."""

    def __init__(self, version, created: bool, warnings: list[dict]):
        self._version, self.created, self.warnings = version, created, warnings

    def __getattr__(self, name):
        return getattr(self._version, name)


def _deploy_payload():
    """The bundle from a multipart zip (fields bundle, key, process_id, note) or a JSON body."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("bundle")
        if upload is None:
            abort(422, message="send the zip as the multipart field 'bundle'", errors={"bundle": ["required"]})
        key = request.form.get("key", "")
        bundle = services.bundle_from_zip(key, upload.read(), request.form.get("process_id") or None)
        return bundle, request.form.get("note") or None
    try:
        payload = DeployJsonSchema().load(request.get_json(silent=True) or {})
    except ValidationError as exc:
        abort(422, message="the request is not a bundle", errors=exc.messages)
    return services.Bundle.from_files(payload["key"], payload["files"], payload["process_id"]), payload["note"]


@blp.route("")
class Versions(MethodView):
    @blp.response(200, ProcessVersionSchema(many=True))
    def get(self):
        """Every deployed version (optionally ?key=...)."""
        require_login()
        return services.list_versions(request.args.get("key") or None)

    @blp.doc(requestBody={"content": {
        "application/json": {"schema": DeployJsonSchema},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "bundle": {"type": "string", "format": "binary"}, "key": {"type": "string"},
            "process_id": {"type": "string"}, "note": {"type": "string"}}}}}})
    @blp.response(201, DeployedSchema)
    @blp.alt_response(200, schema=DeployedSchema, description="identical content: the existing version")
    def post(self):
        """Validate and deploy a bundle (integrator): 201 new version, 200 unchanged, 422 problems."""
        user = require_login()
        services.require_role(user, services.INTEGRATOR, "deploying a process version")
        bundle, note = _deploy_payload()
        version, created, warnings = services.deploy_as(user, bundle, note)
        return _Deployed(version, created, [warning.as_dict() for warning in warnings]), 201 if created else 200


@blp.route("/<int:version_id>")
class Version(MethodView):
    @blp.response(200, ProcessVersionDetailSchema)
    def get(self, version_id):
        """One version with the content of every file."""
        require_login()
        return services.get_version(version_id)


@blp.route("/<int:version_id>/diff/<int:other_id>")
class VersionDiff(MethodView):
    @blp.response(200, DiffSchema(many=True))
    def get(self, version_id, other_id):
        """What changes from version_id to other_id: a unified diff per file that differs."""
        require_login()
        return services.diff_versions(services.get_version(version_id), services.get_version(other_id))


@blp.route("/<int:version_id>/migrate")
class Migrate(MethodView):
    @blp.arguments(MigrateRequestSchema)
    @blp.response(200, MigrationSchema)
    def post(self, payload, version_id):
        """Move running cases to this version (integrator); dry_run reports per case first.

        A case is refused (and left as it is) when the version removed a step it completed or is
        in; every move is recorded on the case.
        """
        user = require_login()
        services.require_role(user, services.INTEGRATOR, "migrating cases")
        target = services.get_version(version_id)
        source = services.get_version(payload["from_version_id"]) if payload["from_version_id"] else None
        reports = services.migrate_cases(user, target, payload["case_ids"], source, dry_run=payload["dry_run"])
        steps = services.step_changes(source, target) if source else {"added": [], "removed": []}
        return {"dry_run": payload["dry_run"], "target": target, "cases": reports,
                "added_steps": steps["added"], "removed_steps": steps["removed"]}


@blp.route("/variants")
class Variants(MethodView):
    @blp.response(200, VariantSchema(many=True))
    def get(self):
        """Which process new cases use, per region (the most specific unit on a case's path wins)."""
        require_login()
        return services.list_variants()


@blp.route("/variants/<unit_code>")
class Variant(MethodView):
    @blp.arguments(VariantRequestSchema)
    @blp.response(200, VariantSchema)
    def put(self, payload, unit_code):
        """New cases opened in this org unit's subtree use ``key`` (integrator)."""
        user = require_login()
        return services.set_variant(user, unit_code, payload["key"], payload["version"], payload["note"])

    @blp.response(204)
    def delete(self, unit_code):
        """The unit's new cases use the default process again (integrator)."""
        user = require_login()
        services.clear_variant(user, unit_code)
