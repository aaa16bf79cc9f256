"""The server-side form renderer over every shipped form: widgets, escaping, posted values back
to JSON, and worded errors next to their fields.

No database: these only need the schemas in forms/ and the sample submissions in factories.
"""
import json
from pathlib import Path

import lxml.html
import pytest
from werkzeug.datastructures import MultiDict

from app.web.mediator.forms import form_errors, parse_form, render_form
from tests.factories import FORMS, failed, form_data

FORMS_DIR = Path(__file__).resolve().parents[2] / "forms"
SCHEMAS = {path.name.removesuffix(".schema.json"): json.loads(path.read_text("utf-8"))
           for path in sorted(FORMS_DIR.glob("*.schema.json"))}


def browser_submit(html) -> MultiDict:
    """What a browser would post for the rendered fields (checked boxes, selected options, text)."""
    form = lxml.html.fromstring(f"<form>{html}</form>")
    return MultiDict(form.form_values())


def doc(html):
    return lxml.html.fromstring(f"<form>{html}</form>")


def expected_widget(prop):
    """(tag, type) the renderer must use for a property, per the forms/README conventions."""
    kind = prop["type"]
    if kind == "boolean":
        return ("input", "radio")
    if kind == "array":
        return ("input", "checkbox") if "enum" in prop["items"] else ("fieldset", None)
    if kind in ("integer", "number"):
        return ("input", "number")
    if "enum" in prop:
        return ("select", None)
    if prop.get("format") == "date":
        return ("input", "date")
    if prop.get("x-widget") == "textarea":
        return ("textarea", None)
    return ("input", "tel" if "phone" in prop.get("title", "") or prop.get("pattern") else "text")


def test_every_shipped_form_has_a_sample_and_the_samples_are_valid():
    assert set(SCHEMAS) == set(FORMS), "factories.FORMS covers every form in forms/"
    for name, schema in SCHEMAS.items():
        assert form_errors(schema, form_data(name)) == {}, name


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_field_gets_its_widget_with_label_and_options(name):
    schema = SCHEMAS[name]
    tree = doc(render_form(schema, {}))
    for field, prop in schema["properties"].items():
        dom_id = f"f-{field}"
        tag, kind = expected_widget(prop)
        if tag == "fieldset":  # the parties list: a repeatable fieldset with one empty row
            group = tree.get_element_by_id(dom_id)
            assert group.tag == "fieldset" and group.get("data-repeat") == f"f.{field}"
            rows = group.xpath("./fieldset[@class='item']")
            assert len(rows) == 1
            for sub, sub_prop in prop["items"]["properties"].items():
                element = tree.get_element_by_id(f"f-{field}-0-{sub}")
                assert element.get("name") == f"f.{field}.0.{sub}"
                assert element.tag == expected_widget(sub_prop)[0]
            continue
        if kind in ("radio", "checkbox"):
            boxes = tree.xpath(f"//input[@name='f.{field}']")
            assert {box.get("type") for box in boxes} == {kind}
            if kind == "radio":
                assert [box.get("value") for box in boxes] == ["true", "false"]
                labels = [box.getparent().text_content().strip() for box in boxes]
                assert labels == ["是", "否"]
            else:
                assert [box.get("value") for box in boxes] == prop["items"]["enum"]
                assert [box.getparent().text_content().strip() for box in boxes] == prop["items"]["enumNames"]
            legend = tree.get_element_by_id(dom_id).find("legend")
            assert prop["title"] in legend.text_content()
            continue
        element = tree.get_element_by_id(dom_id)
        assert element.tag == tag, (field, element.tag)
        assert element.get("name") == f"f.{field}"
        if kind:
            assert element.get("type") == kind, (field, element.get("type"))
        label = tree.xpath(f"//label[@for='{dom_id}']")[0]
        assert prop["title"] in label.text_content()
        required = field in schema.get("required", [])
        assert ("*" in label.text_content()) == required, field
        if tag == "select":
            options = element.findall("option")
            assert [o.get("value") for o in options] == [""] + prop["enum"]
            assert [o.text for o in options[1:]] == prop["enumNames"]
        if prop.get("maxLength") and tag in ("input", "textarea"):
            assert element.get("maxlength") == str(prop["maxLength"])
        if prop.get("minimum") is not None:
            assert element.get("min") == str(prop["minimum"])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_rendered_sample_posts_back_to_the_same_json(name):
    schema, data = SCHEMAS[name], form_data(name)
    posted = browser_submit(render_form(schema, data))
    assert parse_form(schema, posted) == data


@pytest.mark.parametrize("name", ["village_mediate", "town_mediate", "county_mediate"])
def test_failed_mediation_round_trips_and_leaves_out_empty_optional_fields(name):
    schema, data = SCHEMAS[name], failed(name)
    posted = browser_submit(render_form(schema, data))
    # the empty optional fields were posted as "" but are not part of the JSON
    assert posted["f.agreement_summary"] == "" and posted["f.mediators"] == ""
    parsed = parse_form(schema, posted)
    # the yes/no with a schema default comes back answered with it
    assert parsed == {**data, "wants_judicial_confirmation": False}
    assert "agreement_summary" not in parsed and "agreement_amount" not in parsed


def test_boolean_with_a_default_is_preselected_and_parsed_as_json_false():
    schema = SCHEMAS["village_mediate"]
    tree = doc(render_form(schema, {}))
    checked = tree.xpath("//input[@name='f.wants_judicial_confirmation' and @checked]")
    assert [box.get("value") for box in checked] == ["false"]
    intake = doc(render_form(SCHEMAS["intake_register"], {}))
    assert intake.xpath("//input[@name='f.accepted' and @checked]") == [], "no answer chosen for the reader"
    assert parse_form(SCHEMAS["intake_register"], MultiDict({"f.accepted": "false"})) == {"accepted": False}


def test_types_are_converted_and_bad_numbers_kept_as_typed():
    schema = SCHEMAS["intake_register"]
    parsed = parse_form(schema, MultiDict({"f.people_involved": " 12 ", "f.title": "  邻里纠纷 ", "f.location": ""}))
    assert parsed == {"people_involved": 12, "title": "邻里纠纷"}
    assert parse_form(schema, MultiDict({"f.people_involved": "十二"})) == {"people_involved": "十二"}
    money = SCHEMAS["village_mediate"]
    assert parse_form(money, MultiDict({"f.agreement_amount": "1500.50"})) == {"agreement_amount": 1500.5}
    assert parse_form(money, MultiDict({"f.agreement_amount": "2000"})) == {"agreement_amount": 2000}
    assert parse_form(money, MultiDict({"f.agreement_amount": "nan"})) == {"agreement_amount": "nan"}
    assert parse_form(money, MultiDict({"f.process_notes": "第一行\r\n第二行"}))["process_notes"] == "第一行\n第二行"


def test_checkbox_group_posts_a_list_without_duplicates():
    schema = SCHEMAS["county_accept"]
    posted = MultiDict([("f.programs", "mediation"), ("f.programs", "legal_aid"), ("f.programs", "mediation"),
                        ("f.is_major", "true"), ("f.leader_name", "周县长")])
    assert parse_form(schema, posted) == {"programs": ["mediation", "legal_aid"], "is_major": True, "leader_name": "周县长"}
    tree = doc(render_form(schema, {"programs": ["legal_aid"]}))
    assert [box.get("value") for box in tree.xpath("//input[@name='f.programs' and @checked]")] == ["legal_aid"]


def test_party_rows_n_plus_one_remove_and_sparse_indices():
    schema = SCHEMAS["intake_register"]
    two = form_data("intake_register")["parties"]
    tree = doc(render_form(schema, {"parties": two}))
    rows = tree.xpath("//fieldset[@id='f-parties']/fieldset[@class='item']")
    assert len(rows) == 3, "two filled rows and one empty row to add a third without JavaScript"
    assert tree.get_element_by_id("f-parties-2-name").get("value") == ""
    posted = MultiDict([
        ("f.parties.0.name", "王建国"), ("f.parties.0.party_role", "applicant"), ("f.parties.0.phone", "13800001111"),
        ("f.parties.0.id_number", ""),
        ("f.parties.1.name", "李秀英"), ("f.parties.1.party_role", "respondent"), ("f.parties.1._remove", "1"),
        ("f.parties.5.name", "赵第三"), ("f.parties.5.party_role", "third_party"),
        ("f.parties.7.name", ""), ("f.parties.7.party_role", ""),  # the empty row
    ])
    assert parse_form(schema, posted)["parties"] == [
        {"name": "王建国", "party_role": "applicant", "phone": "13800001111"},
        {"name": "赵第三", "party_role": "third_party"},
    ]
    assert "parties" not in parse_form(schema, MultiDict({"f.parties.0.name": ""}))


def test_errors_are_worded_in_chinese_per_field():
    schema = SCHEMAS["intake_register"]
    data = form_data("intake_register", category="gossip", people_involved=0, title="x", accepted=False)
    data["parties"] = [{"party_role": "boss", "phone": "call me"}]
    data.pop("description")
    errors = form_errors(schema, data)
    assert errors == {
        "category": ["请选择有效选项"],
        "people_involved": ["不能小于 1"],
        "title": ["至少输入 2 个字"],
        "description": ["必填"],
        "rejection_reason": ["必填"],  # required because accepted is false
        "parties.0.name": ["必填"],
        "parties.0.party_role": ["请选择有效选项"],
        "parties.0.phone": ["格式不正确"],
    }
    assert form_errors(schema, {**form_data("intake_register"), "people_involved": "十二"})["people_involved"] == ["请输入整数"]
    assert form_errors(schema, {**form_data("intake_register"), "title": "长" * 201})["title"] == ["最多输入 200 个字"]
    assert form_errors(schema, {**form_data("intake_register"), "parties": []})["parties"] == ["至少选择或填写 1 项"]
    assert form_errors(schema, {**form_data("intake_register"), "extra": 1})["extra"] == ["不是本表单的字段"]
    village = SCHEMAS["village_mediate"]
    bad_date = form_errors(village, form_data("village_mediate", mediation_date="2026/11/02"))
    assert bad_date == {"mediation_date": ["日期格式应为 YYYY-MM-DD"]}
    assert form_errors(village, failed("village_mediate", failure_reason=None) | {"failure_reason": "x"}) == {
        "failure_reason": ["请选择有效选项"]}
    no_reason = failed("village_mediate")
    no_reason.pop("failure_reason")
    assert form_errors(village, no_reason) == {"failure_reason": ["必填"]}
    assert form_errors(village, form_data("village_mediate", agreement_amount=-1)) == {"agreement_amount": ["不能小于 0"]}
    assert form_errors(SCHEMAS["county_accept"], {"programs": ["mediation", "mediation"], "is_major": "yes"}) == {
        "programs": ["选项不能重复"], "is_major": ["请选择“是”或“否”"]}


def test_errors_render_next_to_their_field_and_keep_the_entered_values():
    schema = SCHEMAS["intake_register"]
    data = form_data("intake_register", people_involved="十二")
    data["parties"] = [{"name": "王建国", "party_role": "applicant", "phone": "call me"}]
    errors = form_errors(schema, data)
    tree = doc(render_form(schema, data, errors))
    people = tree.get_element_by_id("f-people_involved")
    assert people.get("value") == "十二" and people.get("aria-invalid") == "true"
    message = tree.get_element_by_id("f-people_involved-error")
    assert message.text_content() == "请输入整数"
    assert message.getparent() is people.getparent(), "the message sits in the field's own block"
    assert "f-people_involved-error" in people.get("aria-describedby")
    phone = tree.get_element_by_id("f-parties-0-phone")
    assert phone.get("value") == "call me"
    assert tree.get_element_by_id("f-parties-0-phone-error").text_content() == "格式不正确"
    assert tree.get_element_by_id("f-title").get("value") == data["title"]
    assert "has-error" not in tree.get_element_by_id("f-title").getparent().get("class")


def test_stray_errors_are_shown_at_the_top():
    html = render_form(SCHEMAS["consult_justice"], {}, {"_form": ["整体有误"], "ghost": ["不是本表单的字段"]})
    top = doc(html).get_element_by_id("f-_form-error")
    assert top.text_content() == "整体有误不是本表单的字段"


def test_everything_is_escaped():
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string", "title": "<b>标题</b>", "description": "<i>hint</i>"},
            "kind": {"type": "string", "enum": ['a"><script>x</script>'], "enumNames": ["<img src=x onerror=alert(1)>"]},
            "long": {"type": "string", "x-widget": "textarea"},
        },
    }
    values = {"note": '"><script>alert(1)</script>', "kind": 'a"><script>x</script>', "long": "</textarea><script>y</script>"}
    html = str(render_form(schema, values, {"note": ["<u>bad</u>"]}))
    assert "<script>" not in html and "<b>" not in html and "<img" not in html and "<u>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;/textarea&gt;" in html
    tree = doc(html)
    assert tree.get_element_by_id("f-note").get("value") == values["note"]
    assert tree.get_element_by_id("f-long").text == values["long"]
    assert tree.get_element_by_id("f-kind").find("option[@selected]").text == "<img src=x onerror=alert(1)>"


def test_an_unknown_field_type_is_refused_loudly():
    with pytest.raises(ValueError, match="cannot show field 'blob'"):
        render_form({"type": "object", "properties": {"blob": {"type": "null"}}})
