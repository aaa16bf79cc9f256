from marshmallow import Schema, fields


class GrantSchema(Schema):
    role = fields.String()
    org_unit_id = fields.Integer()
    org_unit = fields.Function(lambda g: g.org_unit.name)


class MeSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    grants = fields.List(fields.Nested(GrantSchema))
