"""Pages for residents (no login): the QR-code report form and the status lookup; and the
printable QR sheet for the staff who put the codes up."""
from flask import Blueprint, render_template

from app.errors import Forbidden, NotFound

bp = Blueprint("public", __name__)
admin_bp = Blueprint("qr_admin", __name__)


@bp.errorhandler(NotFound)
@admin_bp.errorhandler(NotFound)
def _not_found(exc):
    return render_template("errors/404.html"), 404


@admin_bp.errorhandler(Forbidden)
def _forbidden(exc):
    return render_template("errors/403.html"), 403


from app.web.public import admin, routes  # noqa: E402,F401  (attach the views)
