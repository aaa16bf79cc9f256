"""一码解纠纷: a resident scans the village's code, describes the dispute, gets a case number."""
from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from app.errors import InvalidInput
from app.intake import services as intake
from app.web.public import bp

ERROR_WORDS = {
    "required": lambda: _("必填"),
    "invalid_choice": lambda: _("请选择有效选项"),
    "too_long": lambda: _("内容过长"),
    "invalid_phone": lambda: _("请输入有效的电话号码"),
}


def _values(form) -> dict:
    return {key: (form.get(key) or "").strip() for key in ("category", "description", "name", "phone", "location")}


@bp.route("/report/<unit_code>", methods=["GET", "POST"])
def report(unit_code):
    unit = intake.reporting_unit(unit_code)
    values, errors = {}, {}
    if request.method == "POST":
        values = _values(request.form)
        key = intake.client_key(request.remote_addr, current_app.config["SECRET_KEY"])
        try:
            case = intake.submit_resident_report(unit_code, intake.ResidentReport(**values), key)
        except intake.RateLimited as exc:
            retry = exc.details.get("retry_after", 3600)
            page = render_template("public/rate_limited.html", unit=unit, minutes=max(retry // 60, 1))
            return page, 429, {"Retry-After": str(retry)}
        except InvalidInput as exc:
            errors = {field: [ERROR_WORDS.get(code, ERROR_WORDS["required"])() for code in codes]
                      for field, codes in exc.errors.items()}
        else:
            session["reported_case"] = case.number
            return redirect(url_for("public.thanks", unit_code=unit.code))
    return render_template("public/report.html", unit=unit, values=values, errors=errors), 422 if errors else 200


@bp.get("/report/<unit_code>/thanks")
def thanks(unit_code):
    unit = intake.reporting_unit(unit_code)
    number = session.get("reported_case")
    if not number:
        return redirect(url_for("public.report", unit_code=unit.code))
    return render_template("public/thanks.html", unit=unit, number=number)


@bp.route("/report/lookup", methods=["GET", "POST"])
def lookup():
    found, searched = None, False
    number = request.form.get("number", "").strip() if request.method == "POST" else ""
    if request.method == "POST":
        searched = True
        found = intake.lookup(number, request.form.get("phone", ""))
    return render_template("public/lookup.html", found=found, searched=searched, number=number), (
        404 if searched and found is None else 200)
