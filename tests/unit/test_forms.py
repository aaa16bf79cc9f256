"""Checks for the user-task form schemas in forms/.

The schemas are a contract with the BPMN diagrams (which name them through
``spiffworkflow:property name="formJsonSchemaFilename"``), with the gateway
conditions and the triage DMN (which read the submitted codes), and with the
people filling them in (Chinese titles and labels).
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
FORMS_DIR = ROOT / "forms"
WORKFLOWS_DIR = ROOT / "workflows"

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/"
CJK = re.compile(r"[\u4e00-\u9fff]")

FORM_FILES = sorted(FORMS_DIR.glob("*.schema.json"))
MEDIATION_FORMS = ["village_mediate", "town_mediate", "county_mediate"]


def load(name):
    return json.loads((FORMS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def all_forms():
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in FORM_FILES}


def validator(name):
    return jsonschema.Draft202012Validator(load(name), format_checker=jsonschema.FormatChecker())


def failing_fields(name, data):
    """The fields a submission is rejected on, as dotted paths.

    A ``required`` error is reported on the object that lacks the property, so
    it is turned into the path of the missing property itself.
    """
    fields = set()
    for error in validator(name).iter_errors(data):
        base = [str(part) for part in error.absolute_path]
        if error.validator == "required":
            for missing in error.validator_value:
                if missing not in error.instance:
                    fields.add(".".join(base + [missing]))
        elif error.validator == "additionalProperties":
            extra = set(error.instance) - set(error.schema.get("properties", {}))
            fields.update(".".join(base + [key]) for key in extra)
        else:
            fields.add(".".join(base))
    return fields


def walk(node, path=()):
    """Yield (path, subschema) for every dict inside a schema."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, path + (index,))


def bpmn_form_references():
    refs = []
    for bpmn in sorted(WORKFLOWS_DIR.rglob("*.bpmn")):
        tree = etree.parse(str(bpmn))
        for prop in tree.iterfind(f".//{{{SPIFF_NS}}}property[@name='formJsonSchemaFilename']"):
            refs.append((bpmn.relative_to(ROOT).as_posix(), prop.get("value")))
    return refs


def gateway_conditions():
    for bpmn in sorted(WORKFLOWS_DIR.rglob("*.bpmn")):
        tree = etree.parse(str(bpmn))
        for condition in tree.iterfind(f".//{{{BPMN_NS}}}conditionExpression"):
            yield bpmn.name, (condition.text or "").strip()


# --- (a) the schemas themselves ---------------------------------------------


def test_forms_exist():
    assert len(FORM_FILES) == 14


@pytest.mark.parametrize("path", FORM_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == DRAFT_2020_12
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", FORM_FILES, ids=lambda p: p.name)
def test_schema_conventions(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"], "every form requires something"
    assert set(schema["required"]) <= set(schema["properties"])
    assert CJK.search(schema["title"]), "form title must be Chinese"

    for location, node in walk(schema["properties"]):
        if "type" not in node:
            continue  # not a property schema (e.g. the `properties` mapping)
        assert CJK.search(node.get("title", "")), f"{location} needs a Chinese title"
        if node.get("x-widget") == "textarea":
            assert node["type"] == "string" and "maxLength" in node, location
        if node.get("format") == "date":
            assert node["type"] == "string", location
        if node["type"] == "string" and "enum" not in node and "format" not in node:
            assert "maxLength" in node, f"{location} needs a maxLength"


@pytest.mark.parametrize("path", FORM_FILES, ids=lambda p: p.name)
def test_conditional_fields_are_declared(path):
    """Every property an if/then requires is a declared property of the form."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    for location, node in walk(schema):
        if "then" in node:
            tested = node["if"]["properties"].keys()
            assert set(node["if"]["required"]) == set(tested), location
            assert set(node["then"]["required"]) <= set(schema["properties"]), location


# --- (b) BPMN <-> forms -------------------------------------------------------


def test_every_bpmn_reference_names_an_existing_form():
    refs = bpmn_form_references()
    assert refs, "no formJsonSchemaFilename found in workflows/"
    missing = [(diagram, name) for diagram, name in refs if not (FORMS_DIR / name).is_file()]
    assert missing == []


def test_every_form_is_referenced_by_a_diagram():
    referenced = {name for _, name in bpmn_form_references()}
    unused = sorted(path.name for path in FORM_FILES if path.name not in referenced)
    assert unused == []


def test_gateway_codes_exist_in_the_forms():
    """`x == "code"` / `x == True` in a gateway must be a value some form can produce."""
    properties = {}
    for schema in all_forms().values():
        for prop, prop_schema in schema["properties"].items():
            properties.setdefault(prop, []).append(prop_schema)

    checked = 0
    for diagram, text in gateway_conditions():
        for var, value in re.findall(r'(\w+)\s*[!=]=\s*"(\w+)"', text):
            for prop_schema in properties.get(var, []):
                assert value in prop_schema["enum"], f"{diagram}: {text!r}"
                checked += 1
        for var, _ in re.findall(r"(\w+)\s*[!=]=\s*(True|False)\b", text):
            for prop_schema in properties.get(var, []):
                assert prop_schema["type"] == "boolean", f"{diagram}: {text!r}"
                checked += 1
    assert checked >= 10


def test_triage_dmn_codes_exist_in_intake_form():
    intake = load("intake_register")["properties"]
    checked = 0
    for dmn in sorted(WORKFLOWS_DIR.rglob("*.dmn")):
        tree = etree.parse(str(dmn))
        for table in tree.iterfind(f".//{{{DMN_NS}}}decisionTable"):
            inputs = [
                el.text.strip()
                for el in table.iterfind(f"{{{DMN_NS}}}input/{{{DMN_NS}}}inputExpression/{{{DMN_NS}}}text")
            ]
            assert set(inputs) <= set(intake), f"{dmn.name}: triage reads fields the intake form lacks"
            for rule in table.iterfind(f"{{{DMN_NS}}}rule"):
                entries = rule.findall(f"{{{DMN_NS}}}inputEntry/{{{DMN_NS}}}text")
                for field, entry in zip(inputs, entries, strict=True):
                    for code in re.findall(r'"([^"]*)"', entry.text or ""):
                        assert code in intake[field]["enum"], f"{dmn.name} {rule.get('id')}: {code}"
                        checked += 1
    assert checked > 0


# --- (c) enum labels ----------------------------------------------------------


@pytest.mark.parametrize("path", FORM_FILES, ids=lambda p: p.name)
def test_enums_have_parallel_chinese_labels(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    enums = [(loc, node) for loc, node in walk(schema) if "enum" in node or "enumNames" in node]
    for location, node in enums:
        assert "enum" in node and "enumNames" in node, location
        assert len(node["enum"]) == len(node["enumNames"]), location
        assert len(set(node["enum"])) == len(node["enum"]), location
        assert all(CJK.search(label) for label in node["enumNames"]), location


def test_shared_code_lists():
    intake = load("intake_register")["properties"]
    assert len(intake["category"]["enum"]) == 16
    assert intake["category"]["enumNames"][intake["category"]["enum"].index("housing_homestead")] == "房屋宅基地"
    assert intake["channel"]["enum"] == [
        "qr_code", "hotline_12345", "hotline_12348", "walk_in", "grid_report", "app", "referral",
    ]
    assert intake["risk_level"]["enum"] == ["low", "medium", "high"]
    village, *others = [load(name)["properties"] for name in MEDIATION_FORMS]
    for tier in others:
        assert list(tier) == list(village)
        for field in ("mediation_result", "failure_reason"):
            assert tier[field]["enum"] == village[field]["enum"]


# --- (d) sample submissions ---------------------------------------------------


def intake_example(**changes):
    data = {
        "title": "王某与邻居李某宅基地边界纠纷",
        "category": "housing_homestead",
        "description": "王某翻建房屋时，李某认为新砌围墙占用其宅基地约0.5米，双方多次争吵，李某拆除了部分围墙。",
        "channel": "qr_code",
        "source_type": "application",
        "risk_level": "medium",
        "people_involved": 6,
        "parties": [
            {"name": "王建国", "party_role": "applicant", "phone": "13800001111", "id_number": "330110196805120012"},
            {"name": "李秀英", "party_role": "respondent", "phone": "0571-88886666"},
        ],
        "location": "良渚街道东山村三组",
        "accepted": True,
    }
    data.update(changes)
    return data


def mediation_example(**changes):
    data = {
        "mediation_date": "2024-03-15",
        "mediators": "村调委会主任张某、网格员陈某",
        "process_notes": "调解员实地测量边界，组织双方查看1998年宅基地使用证附图，经释法说理双方认可原界址。",
        "mediation_result": "success",
        "agreement_summary": "王某将围墙后退0.3米重砌，李某赔偿拆墙损失2000元，于2024年3月31日前付清。",
        "agreement_amount": 2000,
        "wants_judicial_confirmation": True,
    }
    data.update(changes)
    return data


def visit_example(**changes):
    data = {
        "visit_date": "2024-04-10",
        "visit_method": "phone",
        "agreement_fulfilled": "fully",
        "satisfaction": "satisfied",
    }
    data.update(changes)
    return data


def test_intake_valid_example():
    assert failing_fields("intake_register", intake_example()) == set()


def test_intake_rejection_needs_reason():
    assert failing_fields("intake_register", intake_example(accepted=False)) == {"rejection_reason"}
    rejected = intake_example(accepted=False, rejection_reason="属于已由人民法院受理的案件，不属于人民调解受理范围。")
    assert failing_fields("intake_register", rejected) == set()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"category": "邻里纠纷"}, "category"),
        ({"channel": "wechat"}, "channel"),
        ({"people_involved": 0}, "people_involved"),
        ({"people_involved": 2.5}, "people_involved"),
        ({"title": "吵"}, "title"),
        ({"parties": []}, "parties"),
        ({"parties": [{"name": "王建国"}]}, "parties.0.party_role"),
        ({"parties": [{"name": "王建国", "party_role": "applicant", "phone": "138 0000 1111"}]}, "parties.0.phone"),
        ({"accepted": "是"}, "accepted"),
        ({"tier": "village"}, "tier"),
    ],
)
def test_intake_invalid(changes, field):
    assert failing_fields("intake_register", intake_example(**changes)) == {field}


def test_intake_missing_required_fields():
    assert failing_fields("intake_register", {}) == set(load("intake_register")["required"])


@pytest.mark.parametrize("form", MEDIATION_FORMS)
def test_mediation_success_example(form):
    assert failing_fields(form, mediation_example()) == set()


@pytest.mark.parametrize("form", MEDIATION_FORMS)
def test_mediation_success_needs_agreement(form):
    data = mediation_example()
    del data["agreement_summary"]
    assert failing_fields(form, data) == {"agreement_summary"}


@pytest.mark.parametrize("form", MEDIATION_FORMS)
def test_mediation_failure_needs_reason(form):
    data = mediation_example(mediation_result="failed", wants_judicial_confirmation=False)
    del data["agreement_summary"], data["agreement_amount"]
    assert failing_fields(form, data) == {"failure_reason"}
    assert failing_fields(form, {**data, "failure_reason": "no_agreement"}) == set()
    assert failing_fields(form, {**data, "failure_reason": "其它"}) == {"failure_reason"}


@pytest.mark.parametrize("bad_date", ["2024-02-30", "2024/03/15", "15-03-2024", "2024年3月15日"])
def test_invalid_date_fails_with_format_checker(bad_date):
    assert failing_fields("village_mediate", mediation_example(mediation_date=bad_date)) == {"mediation_date"}


def test_negative_amount_fails():
    assert failing_fields("town_mediate", mediation_example(agreement_amount=-1)) == {"agreement_amount"}


def test_county_accept():
    ok = {"programs": ["mediation", "legal_aid"], "is_major": False}
    assert failing_fields("county_accept", ok) == set()
    assert failing_fields("county_accept", {**ok, "is_major": True}) == {"leader_name"}
    assert failing_fields("county_accept", {**ok, "is_major": True, "leader_name": "副县长刘某"}) == set()
    assert failing_fields("county_accept", {**ok, "programs": []}) == {"programs"}
    assert failing_fields("county_accept", {**ok, "programs": ["mediation", "mediation"]}) == {"programs"}
    assert failing_fields("county_accept", {**ok, "programs": ["arbitration"]}) == {"programs.0"}


def test_court_premediation_settled_needs_agreement():
    assert failing_fields("court_premediation", {"premediation_result": "failed"}) == set()
    assert failing_fields("court_premediation", {"premediation_result": "settled"}) == {"agreement_summary"}


def test_judicial_confirmation_needs_ruling_number():
    data = {"application_date": "2024-03-20", "confirmation_decision": "confirmed"}
    assert failing_fields("judicial_confirmation", data) == {"ruling_number"}
    assert failing_fields("judicial_confirmation", {**data, "ruling_number": "（2024）浙0110民特56号"}) == set()
    assert failing_fields("judicial_confirmation", {**data, "confirmation_decision": "rejected"}) == set()


def test_follow_up_visit():
    assert failing_fields("follow_up_visit", visit_example()) == set()
    assert failing_fields("follow_up_visit", visit_example(satisfaction="basically_satisfied")) == set()
    dissatisfied = visit_example(satisfaction="dissatisfied", agreement_fulfilled="partly")
    assert failing_fields("follow_up_visit", dissatisfied) == {"visit_notes"}
    dissatisfied["visit_notes"] = "李某仅支付1000元，余款拒不支付，王某要求重新处理。"
    assert failing_fields("follow_up_visit", dissatisfied) == set()


def test_long_text_is_capped():
    data = visit_example(satisfaction="dissatisfied", visit_notes="字" * 2001)
    assert failing_fields("follow_up_visit", data) == {"visit_notes"}
