"""Whom a step tells: the people who may take a task, and the supervisors above its unit."""
from sqlalchemy import select

from app.extensions import db
from app.org import services as org
from app.org.models import OrgUnit, RoleGrant
from tests.conftest import user


def _unit(code):
    return db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))


def _names(rows):
    return {row.username for row in rows}


def test_candidates_hold_the_lane_at_or_below_the_unit(app):
    # other tests may grant roles to more demo users: check who must and who must not be there
    town = _names(org.task_candidates("village_mediator", _unit("QX-FQ").path))
    assert {"qx_fq_ds_village_mediator", "qx_fq_xh_village_mediator", "qx_fq_lt_village_mediator"} <= town
    assert not {name for name in town if name.startswith("qx_nh_")}, "another town's people"
    village = _names(org.task_candidates("village_mediator", _unit("QX-FQ-DS").path))
    assert "qx_fq_ds_village_mediator" in village
    assert not village & {"qx_fq_xh_village_mediator", "qx_fq_lt_village_mediator"}, "sibling villages"


def test_a_unit_path_is_a_literal_prefix_not_a_like_pattern(app):
    # Paths hold digits and slashes; one holding LIKE's wildcards still matches only itself.
    holder = user("qx_fq_ds_village_mediator")
    for path in ("/9x%/", "/9\\y/"):
        db.session.add(RoleGrant(user=holder, role=f"odd_lane{len(path)}{path[2]}", org_unit=_unit("QX-FQ-DS"),
                                 org_path=path))
    db.session.flush()
    assert org.task_candidates("odd_lane5x", "/9_%/") == []
    assert _names(org.task_candidates("odd_lane5x", "/9x%/")) == {holder.username}
    assert org.task_candidates("odd_lane5\\", "/9\\\\y/") == []
    assert _names(org.task_candidates("odd_lane5\\", "/9\\y/")) == {holder.username}


def test_supervisors_over_a_unit_sit_at_it_or_above(app):
    village = _names(org.supervisors_over(_unit("QX-FQ-DS").path))
    assert {"qx_supervisor", "qx_fq_supervisor"} <= village and "qx_nh_supervisor" not in village
    town = _names(org.supervisors_over(_unit("QX-NH").path))
    assert {"qx_supervisor", "qx_nh_supervisor"} <= town and "qx_fq_supervisor" not in town
    county = _names(org.supervisors_over(_unit("QX").path))
    assert "qx_supervisor" in county and not county & {"qx_fq_supervisor", "qx_nh_supervisor"}, "below the county"
