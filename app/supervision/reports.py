"""Periodic reports (日报送—周研判—月专题) and the streamed file writers (CSV, XLSX) of the console.

A report is the dashboard of one report period plus the previous period's figures for comparison:
``daily`` is one local day, ``weekly`` the ISO week (Monday to Sunday) holding the chosen day,
``monthly`` its calendar month. Hot spots are evaluated on the 7 days ending on the period's last
day (see queries.hot_spots).

The writers take rows of plain values and yield bytes, so a response can stream an export of any
size: CSV starts with a UTF-8 byte-order mark (Excel then reads Chinese correctly); XLSX is a
minimal SpreadsheetML workbook (one sheet, inline strings) written into a zip as it goes.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from xml.sax.saxutils import escape

from app.exports import spreadsheet_safe
from app.org.models import OrgUnit
from app.supervision import queries
from app.supervision.queries import Dashboard, Figures, Period

KINDS = ("daily", "weekly", "monthly")


def report_period(kind: str, day: date) -> Period:
    """The report period of ``kind`` that contains ``day``."""
    if kind == "daily":
        return Period(day, day)
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        return Period(monday, monday + timedelta(days=6))
    if kind == "monthly":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return Period(first, following - timedelta(days=1))
    raise ValueError(f"unknown report kind {kind!r}")


def previous_period(kind: str, period: Period) -> Period:
    return report_period(kind, period.start - timedelta(days=1))


GRANULARITY = {"daily": "day", "weekly": "day", "monthly": "week"}


@dataclass
class Report:
    kind: str
    dashboard: Dashboard
    previous: Period
    previous_figures: Figures

    @property
    def period(self) -> Period:
        return self.dashboard.period


def build_report(unit: OrgUnit, kind: str, day: date, now: datetime, live: bool = False) -> Report:
    """The ``kind`` report for ``unit``'s subtree over the period holding ``day`` (``live``: read
    the projections only, not the daily rollups; the figures are the same after a refresh)."""
    period = report_period(kind, day)
    board = queries.dashboard(unit, period, now, GRANULARITY[kind], live=live)
    before = previous_period(kind, period)
    return Report(kind, board, before, queries.period_totals(unit, before, now, live=live))


# ---------------------------------------------------------------------------------------------
# Writers

def csv_stream(header: list[str], rows: Iterable[list], chunk_rows: int = 500) -> Iterator[bytes]:
    """CSV in UTF-8 with a byte-order mark, yielded every ``chunk_rows`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([spreadsheet_safe(value) for value in row])
        if count % chunk_rows == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream that hands out what was written since the last drain."""

    def __init__(self):
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self):
        return True

    def write(self, data):
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self):
        return self._position

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


# Characters XML 1.0 cannot carry at all (a stray control character would corrupt the sheet).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '</Types>'
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>'
)


def _workbook(sheet_name: str) -> str:
    name = escape(_NOT_XML.sub("", sheet_name)[:31] or "Sheet1", {'"': "&quot;"})
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell(ref: str, value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value}</v></c>'
    text = escape(_NOT_XML.sub("", str(value)))
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def xlsx_stream(header: list[str], rows: Iterable[list], sheet_name: str = "Sheet1",
                chunk_rows: int = 500) -> Iterator[bytes]:
    """An .xlsx workbook of one sheet (header row + rows), yielded as it is compressed.

    Numbers become number cells, everything else inline strings. The zip is written to an
    unseekable sink, so each member carries a data descriptor and nothing is held back but the
    current chunk.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _workbook(sheet_name))
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        yield sink.drain()
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                        b'<sheetData>')
            sheet.write(_row(1, header).encode("utf-8"))
            parts = []
            for number, row in enumerate(rows, 2):
                parts.append(_row(number, row))
                if len(parts) >= chunk_rows:
                    sheet.write("".join(parts).encode("utf-8"))
                    parts = []
                    yield sink.drain()
            sheet.write("".join(parts).encode("utf-8"))
            sheet.write(b"</sheetData></worksheet>")
    yield sink.drain()


def _row(number: int, values: list) -> str:
    cells = "".join(_cell(f"{_column(index)}{number}", value) for index, value in enumerate(values))
    return f'<row r="{number}">{cells}</row>'
