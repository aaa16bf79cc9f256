"""Every diagram validation rule, each with a diagram that breaks it and the element it names.

No database: app.engine.validation alone, with the roles of app/org/roles.py and the app's diagram
helpers, as the processes service calls it.
"""
from pathlib import Path

import pytest

from app import engine
from app.cases.services import DIAGRAM_HELPERS
from app.org.roles import TASK_ROLES
from app.processes.services import SAMPLE_START_DATA, read_bundle

ROOT = Path(__file__).resolve().parents[2]

NAMESPACES = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
              'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
              'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"')

# A small valid process: start → init (script) → review (user task, village mediator, with a
# boundary time limit) → gateway → done/again → end.
PROCESS = """<bpmn:process id="p" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_mediator" name="village_mediator">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>init</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>limit</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>gw</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>mark</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>late</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init" />
    <bpmn:scriptTask id="init" name="设定时限"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>time_limits = {"village": "P15D"}
time_limits.update(time_limit_overrides)</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="review" />
    <bpmn:userTask id="review" name="调解">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="formJsonSchemaFilename" value="review.schema.json" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:incoming>f_again</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="limit" name="时限" attachedToRef="review">
      <bpmn:outgoing>f_late</bpmn:outgoing>
      <bpmn:timerEventDefinition id="limit_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">duration_of(time_limits["village"])</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f_late" sourceRef="limit" targetRef="late" />
    <bpmn:endEvent id="late"><bpmn:incoming>f_late</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="gw" />
    <bpmn:exclusiveGateway id="gw" name="成功?"><bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f_done</bpmn:outgoing><bpmn:outgoing>f_again</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f_done" sourceRef="gw" targetRef="mark">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">result == "success"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="gw" targetRef="review">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">result != "success"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:scriptTask id="mark" name="记录"><bpmn:incoming>f_done</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>outcome = "resolved"</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="mark" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>"""

FORM = '{"type": "object", "properties": {"result": {"type": "string", "enum": ["success", "failed"]}}}'

DMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="defs_d" name="d" namespace="http://t">
  <decision id="decide" name="decide">
    <decisionTable id="table" hitPolicy="UNIQUE">
      <input id="in_people" label="people"><inputExpression id="ie" typeRef="integer"><text>people_involved</text></inputExpression></input>
      <output id="out_tier" name="start_tier" typeRef="string" />
      <rule id="rule_1"><inputEntry id="r1_in"><text>? &gt;= 10</text></inputEntry><outputEntry id="r1_out"><text>"county"</text></outputEntry></rule>
      <rule id="rule_2"><inputEntry id="r2_in"><text>-</text></inputEntry><outputEntry id="r2_out"><text>"village"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>"""


def definitions(body: str, extra_ns: str = "", attrs: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NAMESPACES} {extra_ns} id="defs" '
            f'targetNamespace="http://bpmn.io/schema/bpmn" {attrs}>\n  {body}\n</bpmn:definitions>\n')


def check(bpmn=None, forms=None, dmn=None, process_id="p", **replacements):
    """Validate the small process (after text replacements ``old=new`` given as a dict)."""
    text = PROCESS
    for old, new in (replacements.pop("replace", None) or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    files = bpmn if bpmn is not None else {"p.bpmn": definitions(text)}
    return engine.validate_bundle(process_id, files, dmn or {}, {"review.schema.json": FORM} if forms is None else forms,
                                  roles=TASK_ROLES, helpers=DIAGRAM_HELPERS, sample_data=SAMPLE_START_DATA)


def errors(problems):
    return [p for p in problems if p.severity == "error"]


def only_error(problems):
    found = errors(problems)
    assert len(found) == 1, [p.as_dict() for p in problems]
    return found[0]


def test_the_small_process_the_shipped_lifecycle_and_its_variant_are_valid():
    assert check() == []
    for directory, key in (("dispute_lifecycle", "dispute_lifecycle"), ("dispute_lifecycle_7day", "dispute_lifecycle_7day")):
        bundle = read_bundle(ROOT / "workflows" / directory, ROOT / "forms", key)
        assert engine.validate_bundle(bundle.top_process_id, bundle.bpmn, bundle.dmn, bundle.forms, roles=TASK_ROLES,
                                      helpers=DIAGRAM_HELPERS, sample_data=SAMPLE_START_DATA) == []


def test_problems_are_plain_dicts_naming_element_file_and_message():
    problem = only_error(check(replace={'name="village_mediator"': 'name="mediators"'}))
    assert problem.as_dict() == {"element_id": "review", "file": "p.bpmn", "severity": "error",
                                 "message": problem.message}


def test_every_problem_is_reported_not_just_the_first():
    problems = check(replace={
        'name="village_mediator"': 'name="mediators"',
        'result == "success"': 'result ==',
        'outcome = "resolved"': 'import os',
        'duration_of(time_limits["village"])': '"P2X"',
    })
    assert {p.element_id for p in errors(problems)} == {"review", "f_done", "mark", "limit"}


# ---------------------------------------------------------------------------------------------
# XML safety and schema

def test_malformed_xml_names_the_file():
    problem = only_error(check(bpmn={"p.bpmn": definitions(PROCESS).replace("</bpmn:process>", "")}))
    assert problem.file == "p.bpmn" and "not well-formed" in problem.message


@pytest.mark.parametrize(("doctype", "reference"), [
    ('<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>',
     "&c;"),
    ('<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>', "&secret;"),
    ('<!DOCTYPE d [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>', "&remote;"),
    ('<!-- a comment first --><!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd">', ""),
])
def test_dtds_entity_expansion_and_external_entities_are_refused(doctype, reference):
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    text = definitions(PROCESS.replace('name="调解"', f'name="{reference}"')).replace(declaration, declaration + doctype)
    problem = only_error(check(bpmn={"p.bpmn": text}))
    assert (problem.file, problem.message) == ("p.bpmn", "p.bpmn declares a DTD; DTDs and entities are not accepted")
    dmn = DMN.replace(declaration, declaration + doctype)
    assert [p.message for p in errors(check(dmn={"d.dmn": dmn}))] == [
        "d.dmn declares a DTD; DTDs and entities are not accepted"]


def test_the_parser_itself_expands_no_entity_and_fetches_nothing():
    """Behind the prolog check, parse_xml refuses a DTD it is handed (e.g. after a long prolog)."""
    from app.engine.specs import parse_xml

    text = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"><x>&secret;</x>'
            '</bpmn:definitions>')
    with pytest.raises(engine.DiagramError) as refused:
        parse_xml(text, "evil.bpmn")
    assert "root:" not in str(refused.value)


def test_oversized_files_are_refused_before_parsing():
    huge = definitions(PROCESS).replace("</bpmn:definitions>", "<!--" + "x" * (2 * 1024 * 1024) + "--></bpmn:definitions>")
    problem = only_error(check(bpmn={"p.bpmn": huge}))
    assert "larger than" in problem.message


def test_xsd_errors_sit_on_the_element():
    problems = errors(check(replace={'<bpmn:userTask id="review" name="调解">': '<bpmn:userTask id="review" name="调解" colour="red">',
                                     '<bpmn:endEvent id="end">': '<bpmn:endEvent id="end"><bpmn:bogus />'}))
    by_element = {p.element_id: p.message for p in problems}
    assert "colour" in by_element["review"] and "not valid BPMN" in by_element["review"]
    assert "bogus" in by_element["end"]


def test_not_a_bpmn_document():
    problem = only_error(check(bpmn={"p.bpmn": '<?xml version="1.0"?><html><body/></html>'}))
    assert "not a BPMN 2.0" in problem.message


# ---------------------------------------------------------------------------------------------
# SpiffWorkflow's own parser

def test_spiffworkflow_parse_errors_name_the_element():
    problems = errors(check(replace={'<bpmn:sequenceFlow id="f4" sourceRef="mark" targetRef="end" />':
                                     '<bpmn:sequenceFlow id="f4" sourceRef="mark" targetRef="nowhere" />'}))
    assert any(p.element_id == "mark" and "nowhere" in p.message for p in problems), problems


def test_the_deployed_process_must_exist_and_be_executable():
    problem = only_error(check(process_id="q"))
    assert problem.element_id == "q" and "'q'" in problem.message and "found: p" in problem.message
    problem = only_error(check(replace={'isExecutable="true"': 'isExecutable="false"'}))
    assert problem.element_id == "p" and "not executable" in problem.message


def test_call_activities_must_call_a_process_of_the_bundle():
    problems = errors(check(replace={
        '<bpmn:scriptTask id="mark" name="记录"><bpmn:incoming>f_done</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>\n'
        '      <bpmn:script>outcome = "resolved"</bpmn:script></bpmn:scriptTask>':
        '<bpmn:callActivity id="mark" name="子流程" calledElement="village_mediaton">'
        '<bpmn:incoming>f_done</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:callActivity>'}))
    assert any(p.element_id == "mark" and "village_mediaton" in p.message for p in problems)


# ---------------------------------------------------------------------------------------------
# Lanes and forms

def test_a_user_task_lane_must_be_a_role_that_works_tasks():
    problem = only_error(check(replace={'name="village_mediator"': 'name="village_mediators"'}))
    assert problem.element_id == "review"
    assert "'village_mediators'" in problem.message and "did you mean 'village_mediator'" in problem.message
    problem = only_error(check(replace={'name="village_mediator"': 'name="supervisor"'}))
    assert "'supervisor'" in problem.message, "supervisors do not work tasks"


def test_a_user_task_outside_every_lane_is_reported():
    problem = only_error(check(replace={"<bpmn:flowNodeRef>review</bpmn:flowNodeRef>": ""}))
    assert problem.element_id == "review" and "in no lane" in problem.message


def test_nested_lanes_the_innermost_names_the_role():
    inner = ('<bpmn:childLaneSet id="inner"><bpmn:lane id="lane_inner" name="village_mediator">'
             '<bpmn:flowNodeRef>review</bpmn:flowNodeRef></bpmn:lane></bpmn:childLaneSet></bpmn:lane>')
    nested = {'<bpmn:lane id="lane_mediator" name="village_mediator">': '<bpmn:lane id="lane_mediator" name="tiers">',
              "</bpmn:lane>\n    </bpmn:laneSet>": inner + "\n    </bpmn:laneSet>"}
    assert errors(check(replace=nested)) == []
    wrong = {**nested, "</bpmn:lane>\n    </bpmn:laneSet>": inner.replace('name="village_mediator"', 'name="town"')
             + "\n    </bpmn:laneSet>"}
    assert "lane 'town'" in only_error(check(replace=wrong)).message


def test_a_task_in_an_embedded_sub_process_takes_the_sub_process_lane():
    body = definitions("""<bpmn:process id="p" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l1" name="town_mediator"><bpmn:flowNodeRef>start</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>sub</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub" />
    <bpmn:subProcess id="sub"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:startEvent id="s2"><bpmn:outgoing>g1</bpmn:outgoing></bpmn:startEvent>
      <bpmn:sequenceFlow id="g1" sourceRef="s2" targetRef="inner" />
      <bpmn:userTask id="inner"><bpmn:incoming>g1</bpmn:incoming><bpmn:outgoing>g2</bpmn:outgoing></bpmn:userTask>
      <bpmn:sequenceFlow id="g2" sourceRef="inner" targetRef="e2" />
      <bpmn:endEvent id="e2"><bpmn:incoming>g2</bpmn:incoming></bpmn:endEvent>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent></bpmn:process>""")
    problems = check(bpmn={"p.bpmn": body})
    assert errors(problems) == []
    assert [(p.element_id, p.severity) for p in problems] == [("inner", "warning")], "no form: a warning"
    outside = check(bpmn={"p.bpmn": body.replace('name="town_mediator"', 'name="tiers"')})
    assert [p.element_id for p in errors(outside)] == ["inner"]


def test_forms_must_exist_and_be_json_schemas():
    assert "not in the bundle" in only_error(check(forms={})).message
    assert "not valid JSON" in only_error(check(forms={"review.schema.json": "{nope"})).message
    problem = only_error(check(forms={"review.schema.json": '{"type": "object", "required": "result"}'}))
    assert problem.element_id == "review" and "not a valid JSON Schema" in problem.message
    assert "must be a JSON object" in only_error(check(forms={"review.schema.json": "[]"})).message
    ui = only_error(check(replace={'value="review.schema.json" />': 'value="review.schema.json" />'
                                   '<spiffworkflow:property name="formUiSchemaFilename" value="review.ui.json" />'}))
    assert "UI schema 'review.ui.json'" in ui.message


# ---------------------------------------------------------------------------------------------
# Timers: compiled and evaluated with representative data

def timer(expression, kind="timeDuration"):
    return check(replace={'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">duration_of(time_limits["village"])</bpmn:timeDuration>':
                          f'<bpmn:{kind} xsi:type="bpmn:tFormalExpression">{expression}</bpmn:{kind}>'})


@pytest.mark.parametrize(("expression", "kind", "expected"), [
    ('"P7X"', "timeDuration", "not an ISO-8601 duration"),
    ("P7D", "timeDuration", "uses a name"),                       # the quotes are missing
    ('"P"', "timeDuration", "an empty duration"),
    ("7", "timeDuration", "not text"),
    ('duration_of(time_limits["vilage"])', "timeDuration", "KeyError"),
    ('duration_of(time_limits["village"]) +', "timeDuration", "is refused"),
    ('().__class__', "timeDuration", "is refused"),
    ('"next tuesday"', "timeDate", "not an ISO-8601 date-time"),
    ('"P1D"', "timeCycle", "not an ISO-8601 cycle"),
    ("", "timeDuration", "has no time"),
])
def test_timers_must_give_a_valid_time(expression, kind, expected):
    problem = only_error(timer(expression, kind))
    assert problem.element_id == "limit", "on the event, not its definition"
    assert expected in problem.message


@pytest.mark.parametrize(("expression", "kind"), [
    ('"PT12H"', "timeDuration"), ('"10WD"', "timeDuration"), ('duration_of("5WD")', "timeDuration"),
    ('"2026-12-01T09:00:00+08:00"', "timeDate"), ('"R3/P1D"', "timeCycle"),
])
def test_valid_timers_pass(expression, kind):
    problems = errors(timer(expression, kind))
    if expression == '"10WD"':  # working days need duration_of(): the library cannot read "10WD"
        assert problems and "not an ISO-8601 duration" in problems[0].message
    else:
        assert problems == []


# ---------------------------------------------------------------------------------------------
# Scripts and conditions under the restricted engine

def test_scripts_and_conditions_must_compile_restricted():
    assert "import statements are not allowed" in only_error(check(replace={'outcome = "resolved"': "import os"})).message
    assert only_error(check(replace={'outcome = "resolved"': "x = ().__class__"})).element_id == "mark"
    assert "has no script" in only_error(check(replace={'outcome = "resolved"': ""})).message
    problem = only_error(check(replace={'result == "success"': "result = 'success'"}))
    assert problem.element_id == "f_done" and "condition" in problem.message
    assert only_error(check(replace={'result == "success"': "result.__class__"})).element_id == "f_done"
    pre = '<spiffworkflow:preScript>open("/etc/passwd")\nimport sys</spiffworkflow:preScript>'
    problem = only_error(check(replace={"<spiffworkflow:properties>": pre + "<spiffworkflow:properties>"}))
    assert problem.element_id == "review" and "pre script" in problem.message


def test_an_unconditioned_gateway_flow_must_be_the_default():
    problem = only_error(check(replace={
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">result != "success"</bpmn:conditionExpression>': ""}))
    assert problem.element_id == "f_again" and "without condition" in problem.message  # SpiffWorkflow's own rule
    assert errors(check(replace={
        '<bpmn:exclusiveGateway id="gw" name="成功?">': '<bpmn:exclusiveGateway id="gw" name="成功?" default="f_again">',
        '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">result != "success"</bpmn:conditionExpression>': ""})) == []


# ---------------------------------------------------------------------------------------------
# DMN

def with_decision(dmn_text):
    task = ('<bpmn:businessRuleTask id="mark" name="研判"><bpmn:extensionElements>'
            '<spiffworkflow:calledDecisionId>decide</spiffworkflow:calledDecisionId></bpmn:extensionElements>'
            '<bpmn:incoming>f_done</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:businessRuleTask>')
    return check(dmn={"d.dmn": dmn_text}, replace={
        '<bpmn:scriptTask id="mark" name="记录"><bpmn:incoming>f_done</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>\n'
        '      <bpmn:script>outcome = "resolved"</bpmn:script></bpmn:scriptTask>': task})


def test_decision_tables_parse_and_their_cells_compile():
    assert with_decision(DMN) == []
    assert "hit policy FIRST" in only_error(with_decision(DMN.replace('hitPolicy="UNIQUE"', 'hitPolicy="FIRST"'))).message
    problem = only_error(with_decision(DMN.replace("<text>? &gt;= 10</text>", "<text>? &gt;=</text>")))
    assert (problem.file, problem.element_id) == ("d.dmn", "r1_in")
    assert only_error(with_decision(DMN.replace('<text>"county"</text>', "<text>__import__('os')</text>"))).element_id == "r1_out"
    assert only_error(with_decision(DMN.replace("<text>people_involved</text>", "<text>people involved</text>"))).element_id == "in_people"
    missing = errors(with_decision(DMN.replace('id="decide"', 'id="decided"')))
    assert any(p.element_id == "mark" and "decide" in p.message for p in missing)
    schema = errors(with_decision(DMN.replace('<output id="out_tier"', '<bogus id="x"/><output id="out_tier"')))
    assert any(p.file == "d.dmn" and "not valid" in p.message for p in schema)


# ---------------------------------------------------------------------------------------------
# Unsupported elements, and diagrams from other modelers

@pytest.mark.parametrize(("snippet", "element_id", "words"), [
    ('<bpmn:manualTask id="paper" name="纸质登记" />', "paper", "manual task '纸质登记' (paper) is not supported"),
    ('<bpmn:task id="generic" />', "generic", "task generic is not supported"),
    ('<bpmn:serviceTask id="sms" name="发短信" />', "sms", "service task"),
    ('<bpmn:sendTask id="send" />', "send", "send task"),
    ('<bpmn:complexGateway id="cg" />', "cg", "complex gateway"),
    ('<bpmn:intermediateCatchEvent id="wait_msg"><bpmn:messageEventDefinition id="md" /></bpmn:intermediateCatchEvent>',
     "wait_msg", "message event definition"),
    ('<bpmn:boundaryEvent id="sig" attachedToRef="review"><bpmn:signalEventDefinition id="sd" /></bpmn:boundaryEvent>',
     "sig", "signal event definition"),
    ('<bpmn:startEvent id="tick"><bpmn:timerEventDefinition id="td"><bpmn:timeCycle>"R/P1D"</bpmn:timeCycle>'
     "</bpmn:timerEventDefinition></bpmn:startEvent>", "tick", "a process starts when a case is opened"),
    ('<bpmn:subProcess id="esp" triggeredByEvent="true" />', "esp", "event sub-process"),
    ('<bpmn:transaction id="tx" />', "tx", "transaction"),
])
def test_unsupported_elements_are_reported_by_kind_name_and_id(snippet, element_id, words):
    problems = errors(check(replace={'<bpmn:endEvent id="end">': snippet + '\n    <bpmn:endEvent id="end">'}))
    assert any(p.element_id == element_id and words in p.message for p in problems), [p.message for p in problems]


def test_message_flows_between_pools_are_reported():
    collaboration = ('<bpmn:collaboration id="c"><bpmn:participant id="pool" processRef="p" />'
                     '<bpmn:participant id="citizen" /><bpmn:messageFlow id="mf" sourceRef="citizen" targetRef="review" />'
                     '</bpmn:collaboration>')
    problems = errors(check(bpmn={"p.bpmn": definitions(collaboration + PROCESS)}))
    assert [(p.element_id, "message flow" in p.message) for p in problems] == [("mf", True)]


CAMUNDA = definitions("""<bpmn:collaboration id="Collaboration_1"><bpmn:participant id="Participant_1" name="调解" processRef="Process_1" /></bpmn:collaboration>
  <bpmn:process id="Process_1" isExecutable="true" camunda:historyTimeToLive="180">
    <bpmn:laneSet id="LaneSet_1"><bpmn:lane id="Lane_1" name="village_mediator">
      <bpmn:flowNodeRef>StartEvent_1</bpmn:flowNodeRef><bpmn:flowNodeRef>Activity_1</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>Gateway_1</bpmn:flowNodeRef><bpmn:flowNodeRef>Event_1</bpmn:flowNodeRef><bpmn:flowNodeRef>Event_2</bpmn:flowNodeRef>
    </bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="StartEvent_1" camunda:initiator="starter"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Activity_1" name="调解" camunda:assignee="demo" camunda:candidateGroups="mediators" camunda:formKey="embedded:app:forms/x.html" camunda:asyncBefore="true">
      <bpmn:extensionElements>
        <camunda:inputOutput><camunda:inputParameter name="x">1</camunda:inputParameter></camunda:inputOutput>
        <spiffworkflow:properties><spiffworkflow:property name="formJsonSchemaFilename" value="review.schema.json" /></spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="Gateway_1" default="Flow_4"><bpmn:incoming>Flow_2</bpmn:incoming><bpmn:outgoing>Flow_3</bpmn:outgoing><bpmn:outgoing>Flow_4</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="Event_1"><bpmn:incoming>Flow_3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="Event_2"><bpmn:incoming>Flow_4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Activity_1" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Activity_1" targetRef="Gateway_1" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Gateway_1" targetRef="Event_1">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">result == "success"</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="Flow_4" sourceRef="Gateway_1" targetRef="Event_2" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_1"><bpmndi:BPMNPlane id="BPMNPlane_1" bpmnElement="Collaboration_1">
    <bpmndi:BPMNShape id="Participant_1_di" bpmnElement="Participant_1" isHorizontal="true"><dc:Bounds x="100" y="60" width="600" height="250" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="Activity_1_di" bpmnElement="Activity_1"><dc:Bounds x="270" y="100" width="100" height="80" /></bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="Flow_1_di" bpmnElement="Flow_1"><di:waypoint x="215" y="140" /><di:waypoint x="270" y="140" /></bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>""",
    extra_ns='xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
             'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
             'xmlns:modeler="http://camunda.org/schema/modeler/1.0"',
    attrs='exporter="Camunda Modeler" exporterVersion="5.31.0" modeler:executionPlatform="Camunda Platform" '
          'modeler:executionPlatformVersion="7.22.0"')


def test_a_camunda_modeler_diagram_with_supported_elements_is_valid():
    assert check(bpmn={"camunda.bpmn": CAMUNDA}, process_id="Process_1") == []
    parsed = engine.parse_bundle("Process_1", {"camunda.bpmn": CAMUNDA})
    assert parsed.user_tasks["Activity_1"].lane == "village_mediator"
    assert parsed.user_tasks["Activity_1"].form == "review.schema.json"


def test_a_camunda_juel_condition_is_reported_on_its_flow():
    juel = CAMUNDA.replace('result == "success"', "${result == 'success'}")
    problem = only_error(check(bpmn={"camunda.bpmn": juel}, process_id="Process_1"))
    assert problem.element_id == "Flow_3" and "condition" in problem.message


def test_a_bpmn_io_demo_diagram_is_reported_as_not_executable():
    demo = definitions('<bpmn:process id="Process_1" isExecutable="false"><bpmn:startEvent id="StartEvent_1" />'
                       "</bpmn:process>")
    problem = only_error(check(bpmn={"diagram.bpmn": demo}, process_id="Process_1", forms={}))
    assert problem.element_id == "Process_1" and 'isExecutable="true"' in problem.message
