"""QR codes for every village/community, printable, for supervisors and county staff."""
from __future__ import annotations

import io

import segno
from flask import current_app, render_template, send_file, url_for
from flask_login import current_user, login_required

from app.errors import Forbidden, NotFound
from app.intake import services as intake
from app.org.models import Level
from app.web.public import admin_bp


def may_print_codes(user) -> bool:
    """Supervisors and county-level staff put the codes up."""
    return any(g.role == "supervisor" or g.org_unit.level == Level.county for g in user.grants)


def _villages():
    user = current_user._get_current_object()
    if not may_print_codes(user):
        raise Forbidden("the QR sheet is for supervisors and county staff")
    return intake.village_units(user)


def report_url(code: str) -> str:
    """The address a code points at; PUBLIC_BASE_URL (e.g. https://tiaojie.example.gov.cn) when
    the site is reached under another name than this request's."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base.rstrip("/") + url_for("public.report", unit_code=code)
    return url_for("public.report", unit_code=code, _external=True)


def _unit(code: str):
    for unit in _villages():
        if unit.code == code:
            return unit
    raise NotFound(f"no village {code} in your units")


@admin_bp.get("/admin/qr")
@login_required
def sheet():
    units = _villages()
    return render_template("admin/qr.html", units=[(unit, report_url(unit.code)) for unit in units])


def _qr(code: str):
    return segno.make(report_url(_unit(code).code), error="m")


@admin_bp.get("/admin/units/<code>/qr.png")
@login_required
def qr_png(code):
    out = io.BytesIO()
    _qr(code).save(out, kind="png", scale=8, border=2)
    out.seek(0)
    return send_file(out, mimetype="image/png", download_name=f"{code}.png", max_age=300)


@admin_bp.get("/admin/units/<code>/qr.svg")
@login_required
def qr_svg(code):
    out = io.BytesIO()
    _qr(code).save(out, kind="svg", scale=6, border=2, title=code)
    out.seek(0)
    return send_file(out, mimetype="image/svg+xml", download_name=f"{code}.svg", max_age=300)
