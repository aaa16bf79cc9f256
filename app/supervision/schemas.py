"""marshmallow schemas of the read-only supervision API (dashboard figures, heat map)."""
import dataclasses

from marshmallow import Schema, fields, pre_dump, validate, validates_schema
from marshmallow.exceptions import ValidationError

from app.supervision.queries import GRANULARITIES, MAX_PERIOD_DAYS


def _with_rates(obj) -> dict:
    """A dataclass holding ``figures`` as a dict, plus the shares computed from those figures."""
    values = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
    values["rates"] = obj.figures.rates()
    return values


class DashboardQuerySchema(Schema):
    unit = fields.Integer(metadata={"description": "org unit id in your subtree (default: your unit)"})
    from_ = fields.Date(data_key="from", metadata={"description": "first local date (default: 29 days before `to`)"})
    to = fields.Date(metadata={"description": "last local date, included (default: today, Asia/Shanghai)"})
    granularity = fields.String(validate=validate.OneOf(GRANULARITIES),
                                metadata={"description": "trend buckets (default: day)"})

    @validates_schema
    def _ordered(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        if start and end:
            if start > end:
                raise ValidationError("must not be after 'to'", field_name="from")
            if (end - start).days >= MAX_PERIOD_DAYS:
                raise ValidationError(f"the period may span at most {MAX_PERIOD_DAYS} days", field_name="from")


class UnitSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    level = fields.Function(lambda unit: unit.level.value)


class PeriodSchema(Schema):
    start = fields.Date(metadata={"description": "first local date"})
    end = fields.Date(metadata={"description": "last local date (included)"})


class TierCountsSchema(Schema):
    village = fields.Integer()
    town = fields.Integer()
    county = fields.Integer()


class TierRatesSchema(Schema):
    village = fields.Float(allow_none=True)
    town = fields.Float(allow_none=True)
    county = fields.Float(allow_none=True)


class FiguresSchema(Schema):
    """Counts; see app.supervision.queries.Figures for what each one counts."""

    opened = fields.Integer(metadata={"description": "cases opened in the period"})
    closed = fields.Integer(metadata={"description": "cases closed in the period (any outcome)"})
    decided = fields.Integer(metadata={"description": "closed as resolved or litigated"})
    resolved = fields.Integer()
    litigated = fields.Integer()
    at_or_below = fields.Nested(TierCountsSchema, metadata={
        "description": "decided cases resolved at this tier or a lower one"})
    on_time = fields.Integer(metadata={"description": "closed cases on which no time limit fired"})
    rated = fields.Integer()
    satisfied = fields.Integer(metadata={"description": "rated satisfied or basically satisfied"})
    overdue = fields.Integer(metadata={"description": "open cases past their time limit now (not suspended)"})


class RatesSchema(Schema):
    """Shares 0..1 rounded to 4 places; null when the denominator is 0."""

    resolved_at_or_below = fields.Nested(TierRatesSchema, metadata={"description": "at_or_below[tier] / decided"})
    litigation = fields.Float(allow_none=True, metadata={"description": "litigated / decided"})
    mediation_success = fields.Float(allow_none=True, metadata={"description": "resolved / decided"})
    on_time = fields.Float(allow_none=True, metadata={"description": "on_time / closed"})
    satisfaction = fields.Float(allow_none=True, metadata={"description": "satisfied / rated"})


class BreakdownSchema(Schema):
    key = fields.Raw(metadata={"description": "category / channel code, or org unit id"})
    name = fields.String(allow_none=True)
    figures = fields.Nested(FiguresSchema)
    rates = fields.Nested(RatesSchema)

    @pre_dump
    def _rates(self, row, **kwargs):
        return _with_rates(row)


class TrendPointSchema(Schema):
    bucket = fields.String(metadata={"description": "2026-11-02, 2026-W45 or 2026-11"})
    start = fields.Date()
    opened = fields.Integer()
    closed = fields.Integer()


class HotSpotSchema(Schema):
    unit_id = fields.Integer()
    unit_name = fields.String()
    category = fields.String()
    count = fields.Integer(metadata={"description": "cases opened in the 7 days ending on the period's last day"})
    baseline = fields.Integer(metadata={"description": "cases opened in the 28 days before those"})
    weekly_average = fields.Float()
    ratio = fields.Float(allow_none=True, metadata={"description": "count / weekly_average (null: new category)"})


class FlaggedCaseSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    title = fields.String()
    category = fields.String()
    people_involved = fields.Integer()
    risk_level = fields.String()
    current_tier = fields.String(allow_none=True)
    opened_at = fields.DateTime()


class FlaggedSchema(Schema):
    total = fields.Integer()
    mass = fields.Integer(metadata={"description": "open cases with at least 10 people involved (涉众)"})
    stability = fields.Integer(metadata={"description": "open cases with risk level high (涉稳)"})
    items = fields.List(fields.Nested(FlaggedCaseSchema), metadata={"description": "the 50 newest"})


class DashboardSchema(Schema):
    unit = fields.Nested(UnitSchema)
    period = fields.Nested(PeriodSchema)
    granularity = fields.String()
    generated_at = fields.DateTime()
    figures = fields.Nested(FiguresSchema)
    rates = fields.Nested(RatesSchema)
    by_category = fields.List(fields.Nested(BreakdownSchema))
    by_channel = fields.List(fields.Nested(BreakdownSchema))
    by_unit = fields.List(fields.Nested(BreakdownSchema))
    trend = fields.List(fields.Nested(TrendPointSchema))
    hot_spots = fields.List(fields.Nested(HotSpotSchema))
    flagged = fields.Nested(FlaggedSchema)

    @pre_dump
    def _rates(self, board, **kwargs):
        return _with_rates(board)


class HeatmapQuerySchema(Schema):
    version = fields.Integer(required=True, metadata={"description": "process version id"})
    unit = fields.Integer(metadata={"description": "org unit id in your subtree (default: your unit)"})
    from_ = fields.Date(data_key="from", metadata={"description": "tasks completed from this local date "
                                                                  "(default: 89 days before `to`)"})
    to = fields.Date(metadata={"description": "last local date, included (default: today)"})


class TaskHeatSchema(Schema):
    spec_name = fields.String()
    title = fields.String()
    passed = fields.Integer(metadata={"description": "completed tasks of this spec"})
    median_seconds = fields.Float(allow_none=True, metadata={"description": "median ready → completed"})
    waiting = fields.Integer(metadata={"description": "ready now"})

