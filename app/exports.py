"""Cells for files that people open in a spreadsheet program."""
from __future__ import annotations

# A text cell starting with one of these is a formula to Excel and WPS (CSV injection: a resident's
# report titled "=HYPERLINK(...)" must stay text), so such cells get a leading apostrophe.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """``value`` as a CSV cell: None → "", formula-like text → quoted with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
