"""Text that comes from diagrams and form schemas, in the reader's language.

Policy staff write task names and form labels in Chinese, inside ``workflows/*.bpmn`` and
``forms/*.schema.json``. Those Chinese texts are the msgids of the same gettext catalog the pages
use: ``pybabel extract`` finds them through the two extractors below (named in babel.cfg), and
pages pass them through :func:`translate`. A label added in the form editor that the catalog does
not know yet simply shows in Chinese.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from flask_babel import gettext
from lxml import etree

from app.engine.specs import parse_xml

# Schema keywords whose values readers see (enumNames is a list: one label per enum code).
_FORM_TEXT_KEYS = ("title", "description")
# Lanes are named by role code, not shown to readers.
_BPMN_NAMED = {"userTask", "manualTask", "callActivity", "subProcess", "participant"}
_BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def translate(text: str | None) -> str:
    """The catalog's translation of a diagram or form text (the text itself when it has none)."""
    if not text:
        return text or ""
    return gettext(text)


def _form_texts(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key in _FORM_TEXT_KEYS:
            if isinstance(node.get(key), str):
                yield node[key]
        names = node.get("enumNames")
        if isinstance(names, list):
            yield from (name for name in names if isinstance(name, str))
        for value in node.values():
            yield from _form_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _form_texts(item)


def _messages(texts, lineno_of=lambda text: 0):
    seen = set()
    for text in texts:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            yield lineno_of(text), None, text, []


def extract_form_schema(fileobj, keywords, comment_tags, options):
    """Babel extractor for ``forms/*.schema.json``: titles, descriptions and enum labels."""
    source = fileobj.read().decode("utf-8")
    lines = source.splitlines()

    def lineno_of(text):
        quoted = json.dumps(text, ensure_ascii=False)
        return next((number for number, line in enumerate(lines, 1) if quoted in line), 0)

    yield from _messages(_form_texts(json.loads(source)), lineno_of)


def extract_bpmn_names(fileobj, keywords, comment_tags, options):
    """Babel extractor for ``workflows/**.bpmn``: the names of tasks, call activities and lanes."""
    root = parse_xml(fileobj.read(), getattr(fileobj, "name", "diagram"))
    found = []
    for element in root.iter(f"{{{_BPMN_NS}}}*"):
        if etree.QName(element).localname in _BPMN_NAMED and element.get("name"):
            found.append((element.sourceline or 0, element.get("name")))
    lines = {name: line for line, name in reversed(found)}
    yield from _messages((name for _, name in found), lambda text: lines.get(text, 0))
