"""Render a task's JSON-Schema form to HTML, read the posted fields back into JSON, and word
validation errors for the person filling it in.

Field names are the property paths under the prefix ``f.``: ``f.title``, ``f.parties.0.name``;
a checkbox group posts its name once per ticked box. Every value, label and hint passes through
``markupsafe`` escaping: schema text is written by policy staff and values by anyone.

Widgets, by schema:
- ``boolean`` → yes/no radio buttons (a checkbox cannot tell "no" from "not answered")
- ``string`` + ``enum`` → ``<select>`` labelled by ``enumNames``
- ``string`` + ``format: date`` → ``<input type=date>``
- ``string`` + ``x-widget: textarea`` → ``<textarea>``; other strings → text input
- ``integer`` / ``number`` → ``<input type=number>``
- ``array`` of enum strings → checkbox group
- ``array`` of objects → one fieldset per item plus one empty row (N+1: adding works without
  JavaScript), each with a "remove" box; app.js adds add/remove buttons on top
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import jsonschema
from flask_babel import gettext as _
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from app.i18n import translate

PREFIX = "f."
REMOVE = "_remove"
_MISSING = object()
_INT = re.compile(r"^[+-]?\d+$")


# ---------------------------------------------------------------------------------------------
# Rendering

def _attrs(**attrs) -> Markup:
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        if value is True:
            parts.append(Markup(" {}").format(name))
        else:
            parts.append(Markup(' {}="{}"').format(name, value))
    return Markup("").join(parts)


def _dom_id(path: str) -> str:
    return "f-" + path.replace(".", "-")


def _kind(prop: Mapping) -> str:
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items", {})
        if items.get("type") == "object":
            return "object_list"
        if "enum" in items:
            return "checkboxes"
        return "unsupported"
    if kind == "boolean":
        return "boolean"
    if kind in ("integer", "number"):
        return kind
    if kind == "object":
        return "object"
    if kind == "string":
        if "enum" in prop:
            return "select"
        if prop.get("format") == "date":
            return "date"
        if prop.get("x-widget") == "textarea":
            return "textarea"
        return "text"
    return "unsupported"


def _number_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _errors_html(messages: list[str], path: str) -> Markup:
    if not messages:
        return Markup("")
    items = Markup("").join(Markup("<span>{}</span>").format(message) for message in messages)
    return Markup('<p class="field-error" id="{}-error" role="alert">{}</p>').format(_dom_id(path), items)


def _hint_html(prop: Mapping, path: str) -> Markup:
    if not prop.get("description"):
        return Markup("")
    return Markup('<small class="hint" id="{}-hint">{}</small>').format(_dom_id(path), translate(prop["description"]))


def _label_text(prop: Mapping, name: str, required: bool) -> Markup:
    marker = Markup(' <abbr class="req" title="{}">*</abbr>').format(_("必填")) if required else Markup("")
    return Markup("{}{}").format(translate(prop.get("title")) or name, marker)


def _options(prop: Mapping) -> list[tuple[str, str]]:
    codes = prop.get("enum", [])
    names = prop.get("enumNames") or codes
    return [(str(code), translate(str(label))) for code, label in zip(codes, names, strict=False)]


def _described_by(prop: Mapping, path: str, has_errors: bool) -> str | None:
    ids = []
    if prop.get("description"):
        ids.append(f"{_dom_id(path)}-hint")
    if has_errors:
        ids.append(f"{_dom_id(path)}-error")
    return " ".join(ids) or None


def _render_leaf(kind: str, prop: Mapping, path: str, value, required: bool, messages: list[str]) -> Markup:
    dom_id, name = _dom_id(path), PREFIX + path
    invalid = bool(messages)
    common = dict(id=dom_id, name=name, aria_invalid="true" if invalid else None,
                  aria_required="true" if required else None,
                  aria_describedby=_described_by(prop, path, invalid))
    label = Markup('<label for="{}">{}</label>').format(dom_id, _label_text(prop, path.rsplit(".", 1)[-1], required))
    text = "" if value is None else value
    if kind == "select":
        chosen = "" if value is None else str(value)
        options = [Markup('<option value=""{}>{}</option>').format(
            Markup(" selected") if chosen == "" else Markup(""), _("请选择"))]
        for code, option_label in _options(prop):
            options.append(Markup("<option{}>{}</option>").format(
                _attrs(value=code, selected=code == chosen), option_label))
        control = Markup("<select{}>{}</select>").format(_attrs(**common), Markup("").join(options))
    elif kind == "textarea":
        control = Markup("<textarea{}>{}</textarea>").format(
            _attrs(rows=4, maxlength=prop.get("maxLength"), **common), text)
    elif kind == "date":
        control = Markup("<input{}>").format(_attrs(type="date", value=text, **common))
    elif kind in ("integer", "number"):
        control = Markup("<input{}>").format(_attrs(
            type="number", value=_number_text(text) if text != "" else "",
            step="1" if kind == "integer" else "any", min=prop.get("minimum"), max=prop.get("maximum"),
            inputmode="numeric" if kind == "integer" else "decimal", **common))
    else:  # text
        is_phone = "phone" in path.rsplit(".", 1)[-1]
        control = Markup("<input{}>").format(_attrs(
            type="tel" if is_phone else "text", value=text, maxlength=prop.get("maxLength"), **common))
    return Markup('<div class="field{}">{}{}{}{}</div>').format(
        " has-error" if invalid else "", label, _hint_html(prop, path), control, _errors_html(messages, path))


def _render_choice_group(kind: str, prop: Mapping, path: str, value, required: bool, messages: list[str]) -> Markup:
    """Yes/no radios for a boolean, a checkbox group for an array of enum strings."""
    dom_id, name = _dom_id(path), PREFIX + path
    invalid = bool(messages)
    if kind == "boolean":
        current = value if isinstance(value, bool) else prop.get("default")
        choices = [("true", _("是"), current is True), ("false", _("否"), current is False)]
        input_type = "radio"
    else:
        ticked = {str(item) for item in value} if isinstance(value, list) else set()
        choices = [(code, label, code in ticked) for code, label in _options(prop.get("items", {}))]
        input_type = "checkbox"
    boxes = []
    for index, (code, label, checked) in enumerate(choices):
        boxes.append(Markup('<label class="choice"><input{}> {}</label>').format(
            _attrs(type=input_type, id=f"{dom_id}-{index}", name=name, value=code, checked=checked,
                   aria_invalid="true" if invalid else None), label))
    return Markup('<fieldset class="field choices{}" id="{}"{}><legend>{}</legend>{}<div class="options">{}</div>{}'
                  "</fieldset>").format(
        " has-error" if invalid else "", dom_id,
        _attrs(aria_describedby=_described_by(prop, path, invalid), aria_required="true" if required else None),
        _label_text(prop, path.rsplit(".", 1)[-1], required), _hint_html(prop, path),
        Markup("").join(boxes), _errors_html(messages, path))


def _render_object_list(prop: Mapping, path: str, value, required: bool, errors: Mapping[str, list[str]]) -> Markup:
    items_schema = prop.get("items", {})
    rows = [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []
    rows.append({})  # N+1: one empty row to add an item without JavaScript
    item_title = translate(items_schema.get("title") or prop.get("title")) or path
    rendered = []
    for index, row in enumerate(rows):
        row_path = f"{path}.{index}"
        remove_id = _dom_id(f"{row_path}.{REMOVE}")
        legend = Markup("{} {}").format(item_title, index + 1)
        if index == len(rows) - 1:
            legend = Markup("{}（{}）").format(legend, _("新增一行，不需要请留空"))
        rendered.append(Markup(
            '<fieldset class="item" data-index="{}"><legend>{}</legend>{}'
            '<label class="choice remove"><input{}> {}</label></fieldset>').format(
            index, legend, _render_properties(items_schema, row_path, row, errors),
            _attrs(type="checkbox", id=remove_id, name=f"{PREFIX}{row_path}.{REMOVE}", value="1"), _("删除此行")))
    messages = errors.get(path, [])
    return Markup('<fieldset class="field repeat{}" id="{}" data-repeat="{}"><legend>{}</legend>{}{}{}</fieldset>').format(
        " has-error" if messages else "", _dom_id(path), PREFIX + path,
        _label_text(prop, path.rsplit(".", 1)[-1], required), _hint_html(prop, path),
        Markup("").join(rendered), _errors_html(messages, path))


def _render_properties(schema: Mapping, base: str, values: Mapping, errors: Mapping[str, list[str]]) -> Markup:
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        path = f"{base}.{name}" if base else name
        value = values.get(name) if isinstance(values, Mapping) else None
        kind = _kind(prop)
        if kind == "object_list":
            parts.append(_render_object_list(prop, path, value, name in required, errors))
        elif kind == "object":
            parts.append(Markup('<fieldset class="field group" id="{}"><legend>{}</legend>{}{}</fieldset>').format(
                _dom_id(path), _label_text(prop, name, name in required),
                _render_properties(prop, path, value or {}, errors), _errors_html(errors.get(path, []), path)))
        elif kind in ("boolean", "checkboxes"):
            parts.append(_render_choice_group(kind, prop, path, value, name in required, errors.get(path, [])))
        elif kind == "unsupported":
            raise ValueError(f"the form renderer cannot show field {path!r} of type {prop.get('type')!r}")
        else:
            parts.append(_render_leaf(kind, prop, path, value, name in required, errors.get(path, [])))
    return Markup("").join(parts)


def render_form(schema: Mapping, values: Mapping | None = None, errors: Mapping[str, list[str]] | None = None) -> Markup:
    """The form's fields as HTML (without the ``<form>`` element, buttons or CSRF token)."""
    errors = errors or {}
    top = errors.get("_form", [])
    known = _field_paths(schema)
    # Errors on paths the form does not show (e.g. a stray field) still reach the reader.
    stray = [message for path, messages in errors.items() if path != "_form" and not _shown(path, known)
             for message in messages]
    head = _errors_html(top + stray, "_form") if top or stray else Markup("")
    return head + _render_properties(schema, "", values or {}, errors)


def _field_paths(schema: Mapping, base: str = "") -> set[str]:
    paths = set()
    for name, prop in schema.get("properties", {}).items():
        path = f"{base}.{name}" if base else name
        paths.add(path)
        if prop.get("type") == "object":
            paths |= _field_paths(prop, path)
    return paths


def _shown(path: str, known: set[str]) -> bool:
    # parties.2.name is shown when "parties" is a field (rows are rendered from the values)
    return path in known or path.split(".", 1)[0] in known


# ---------------------------------------------------------------------------------------------
# Parsing

def parse_form(schema: Mapping, form: MultiDict) -> dict:
    """The posted fields as JSON values of the schema's types; empty optional fields are left out.

    A value that does not convert (letters in a number) is kept as text, so validation reports it
    against its field and the page shows what was typed.
    """
    return _parse_object(schema, form, PREFIX)


def _parse_object(schema: Mapping, form: MultiDict, prefix: str) -> dict:
    out = {}
    for name, prop in schema.get("properties", {}).items():
        value = _parse_value(prop, form, prefix + name)
        if value is not _MISSING:
            out[name] = value
    return out


def _text(form: MultiDict, key: str) -> str:
    return (form.get(key) or "").replace("\r\n", "\n").strip()


def _parse_value(prop: Mapping, form: MultiDict, key: str):
    kind = _kind(prop)
    if kind == "object_list":
        heads = {field[len(key) + 1:].split(".", 1)[0] for field in form if field.startswith(key + ".")}
        indices = sorted(int(head) for head in heads if head.isdigit())
        rows = []
        for index in indices:
            if form.get(f"{key}.{index}.{REMOVE}"):
                continue
            row = _parse_object(prop.get("items", {}), form, f"{key}.{index}.")
            if row:
                rows.append(row)
        return rows or _MISSING
    if kind == "object":
        row = _parse_object(prop, form, key + ".")
        return row or _MISSING
    if kind == "checkboxes":
        ticked = [value.strip() for value in form.getlist(key) if value.strip()]
        return list(dict.fromkeys(ticked)) or _MISSING
    text = _text(form, key)
    if text == "":
        return _MISSING
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    if kind == "integer":
        return int(text) if _INT.match(text) else text
    if kind == "number":
        if _INT.match(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


# ---------------------------------------------------------------------------------------------
# Errors in words

def _message(error: jsonschema.ValidationError) -> str:
    kind, limit = error.validator, error.validator_value
    if kind == "enum":
        return _("请选择有效选项")
    if kind == "format":
        return _("日期格式应为 YYYY-MM-DD") if limit == "date" else _("格式不正确")
    if kind == "type":
        return {
            "integer": _("请输入整数"), "number": _("请输入数字"), "boolean": _("请选择“是”或“否”"),
        }.get(limit, _("格式不正确"))
    if kind == "minLength":
        return _("必填") if limit == 1 else _("至少输入 %(n)s 个字", n=limit)
    if kind == "maxLength":
        return _("最多输入 %(n)s 个字", n=limit)
    if kind == "minimum":
        return _("不能小于 %(n)s", n=limit)
    if kind == "maximum":
        return _("不能大于 %(n)s", n=limit)
    if kind == "exclusiveMinimum":
        return _("应大于 %(n)s", n=limit)
    if kind == "exclusiveMaximum":
        return _("应小于 %(n)s", n=limit)
    if kind == "minItems":
        return _("至少选择或填写 %(n)s 项", n=limit)
    if kind == "maxItems":
        return _("最多 %(n)s 项", n=limit)
    if kind == "uniqueItems":
        return _("选项不能重复")
    if kind == "pattern":
        return _("格式不正确")
    if kind == "const":
        return _("取值无效")
    return _("填写有误")


def form_errors(schema: Mapping, data: Mapping) -> dict[str, list[str]]:
    """Validate ``data`` like services.validate_form and word each error for the page.

    Keys are the same field paths (a missing required field is reported on the field itself).
    """
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors: dict[str, list[str]] = {}

    def add(path: str, message: str):
        bucket = errors.setdefault(path or "_form", [])
        if message not in bucket:
            bucket.append(message)

    for error in validator.iter_errors(data):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            for name in error.validator_value:
                if isinstance(error.instance, Mapping) and name not in error.instance:
                    add(f"{path}.{name}" if path else name, _("必填"))
        elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            allowed = set(error.schema.get("properties", {}))
            for name in error.instance:
                if name not in allowed:
                    add(f"{path}.{name}" if path else name, _("不是本表单的字段"))
        else:
            add(path, _message(error))
    return errors
