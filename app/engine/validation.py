"""Check a bundle before it is saved or deployed, reporting every problem at once.

Each problem names the file and the BPMN/DMN element it is about, so the modeler can put it on
the shape. The rules:

- every file is well-formed XML without a DTD (no entity expansion, no external entities) and
  within the size limit; BPMN and DMN files are valid against their XSDs;
- SpiffWorkflow parses every executable process and decision table, and the bundle has the
  process it is deployed for;
- only elements this platform runs are used; anything else is reported by kind, name and id;
- every user task sits in a lane named after a role that works tasks;
- every form a user task names is in the bundle and is a valid JSON Schema;
- every timer expression compiles under the restricted script engine and, evaluated with
  representative data, gives an ISO-8601 duration, date-time or cycle as its kind requires;
- every script, pre/post script, gateway condition, multi-instance expression and DMN cell
  compiles under the restricted script engine; DMN hit policies are ones SpiffWorkflow runs.

Representative data for timers: the values the caller says a new case starts with, a sample
value for every field of every form (its default, first choice, or a value of its type), the
first rule's outputs of every decision table, and whatever the bundle's scripts set when run
on that data in document order (so ``time_limits`` set by a script is there for
``duration_of(time_limits["village"])``).
"""
from __future__ import annotations

import copy
import difflib
import json
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

import jsonschema
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from app.engine.errors import DiagramError
from app.engine.scripting import (
    RestrictedEnvironment,
    ScriptLimitExceeded,
    ScriptRejected,
    ScriptTimeout,
    check_expression,
    check_script,
    make_environment,
)
from app.engine.specs import parse_xml

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}

#: Elements SpiffWorkflow could parse but this platform cannot run, and why.
UNSUPPORTED = {
    "task": "a plain task waits for someone but reaches nobody's inbox; make it a user task in a role's "
            "lane, or a script task",
    "manualTask": "a manual task reaches nobody's inbox; make it a user task in a role's lane",
    "serviceTask": "this platform has no service connectors; use a script task",
    "sendTask": "messages between processes are not supported",
    "receiveTask": "messages between processes are not supported",
    "complexGateway": "SpiffWorkflow cannot run complex gateways; use exclusive, inclusive or parallel gateways",
    "transaction": "transactions and compensation are not supported; use an embedded sub-process",
    "adHocSubProcess": "ad-hoc sub-processes are not supported",
    "dataStoreReference": "data stores are not supported; keep data in the case",
    "messageFlow": "message flows between pools are not supported; one pool runs per process",
    "messageEventDefinition": "message events are not supported",
    "signalEventDefinition": "signal events are not supported",
    "conditionalEventDefinition": "conditional events are not supported; use a gateway condition",
    "compensateEventDefinition": "compensation is not supported",
    "linkEventDefinition": "link events are not supported; draw the sequence flow",
    "cancelEventDefinition": "cancel events belong to transactions, which are not supported",
}
_EVENT_DEFINITIONS = {name for name in UNSUPPORTED if name.endswith("EventDefinition")}
_DMN_HIT_POLICIES = {"UNIQUE", "COLLECT"}
_SAMPLE_TIME_BUDGET = 0.2
_xsd_lock = threading.Lock()
_dmn_validators: dict[str, BpmnValidator] = {}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle. ``severity`` "warning" does not block a deployment."""

    element_id: str
    file: str
    message: str
    severity: str = "error"

    def as_dict(self) -> dict:
        return asdict(self)


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _words(tag: str) -> str:
    """``userTask`` → ``user task`` for messages."""
    return re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), tag)


def _describe(element) -> str:
    name = element.get("name")
    kind = _words(_local(element))
    return f"{kind} '{name}' ({element.get('id')})" if name else f"{kind} {element.get('id')}"


def _owner_id(element) -> str:
    """The nearest element (itself or an ancestor) with an id: what the modeler can mark."""
    while element is not None:
        if element.get("id"):
            return element.get("id")
        element = element.getparent()
    return ""


def _shape_id(element) -> str:
    """For an event definition or expression: the id of the flow element that holds it."""
    parent = element.getparent()
    while parent is not None and _local(parent) in ("extensionElements", "timerEventDefinition", "conditionExpression"):
        parent = parent.getparent()
    return _owner_id(parent if parent is not None else element)


def _short_xsd_message(message: str) -> str:
    for uri, prefix in ((BPMN_NS, "bpmn"), (SPIFF_NS, "spiffworkflow")):
        message = message.replace(f"{{{uri}}}", f"{prefix}:")
    return re.sub(r"\{[^}]+\}", "", message)


# ---------------------------------------------------------------------------------------------
# Entry point

def validate_bundle(
    process_id: str,
    bpmn: Mapping[str, str],
    dmn: Mapping[str, str] | None = None,
    forms: Mapping[str, str] | None = None,
    *,
    roles: Collection[str] | None = None,
    helpers: Mapping[str, Callable] | None = None,
    sample_data: Mapping | None = None,
) -> list[Problem]:
    """Return every problem of the bundle (empty: deployable). Never raises for bad input.

    ``roles``: lane names a user task may sit in (None: not checked). ``helpers``: the functions
    diagram code may call at run time (``duration_of``). ``sample_data``: what a new case's
    workflow starts with.
    """
    dmn, forms = dict(dmn or {}), dict(forms or {})
    problems: list[Problem] = []
    trees = _parse_files(bpmn, "bpmn", problems)
    dmn_trees = _parse_files(dmn, "dmn", problems)
    complete = len(trees) == len(bpmn)  # else the process may be in the file that did not parse
    for name, tree in trees.items():
        _check_xsd(name, tree, VALIDATOR, problems)
    for name, tree in dmn_trees.items():
        validator = _dmn_validator(tree)
        if validator is not None:
            _check_xsd(name, tree, validator, problems)
    _check_with_spiffworkflow(process_id, trees, dmn_trees, problems, complete)
    all_process_ids = process_ids_in(trees)
    for name, tree in trees.items():
        _check_elements(name, tree, problems)
        _check_call_activities(name, tree, all_process_ids, problems)
        if roles is not None:
            _check_lanes(name, tree, set(roles), problems)
        _check_forms(name, tree, forms, problems)
        _check_code(name, tree, problems)
    for name, tree in dmn_trees.items():
        _check_dmn(name, tree, problems)
    # Uploaded diagrams are the first place a malicious script runs: use the worker processes.
    environment = make_environment(dict(helpers or {}), time_budget=_SAMPLE_TIME_BUDGET)
    data = _sample_data(process_id, trees, dmn_trees, forms, environment, dict(sample_data or {}), problems)
    for name, tree in trees.items():
        _check_timers(name, tree, environment, data, problems)
    return _unique(problems)


def process_ids_in(trees: Mapping[str, etree._Element]) -> set[str]:
    return {p.get("id") for tree in trees.values() for p in tree.iterfind(".//bpmn:process", NS)}


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for problem in problems:
        key = (problem.file, problem.element_id, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out


# ---------------------------------------------------------------------------------------------
# XML, XSD and the library's own parser

#: A document type declaration in the prolog (before the root element).
_DOCTYPE = re.compile(r"^\ufeff?\s*(?:<\?xml[^>]*\?>)?(?:\s|<!--.*?-->|<\?.*?\?>)*<!DOCTYPE", re.DOTALL | re.IGNORECASE)


def _parse_files(files: Mapping[str, str], kind: str, problems: list[Problem]) -> dict:
    trees = {}
    for name in sorted(files):
        text = files[name]
        head = text[:65536] if isinstance(text, str) else text[:65536].decode("utf-8", "replace")
        if _DOCTYPE.match(head):
            # Refused before parsing: with a DTD, entity definitions (expansion bombs, external
            # files or URLs) would be the parser's first concern.
            problems.append(Problem("", name, f"{name} declares a DTD; DTDs and entities are not accepted"))
            continue
        try:
            root = parse_xml(files[name], name)
        except DiagramError as exc:
            problems.append(Problem("", name, str(exc)))
            continue
        expected = "definitions"
        if _local(root) != expected or (kind == "bpmn" and etree.QName(root).namespace != BPMN_NS):
            what = "BPMN 2.0 <bpmn:definitions>" if kind == "bpmn" else "DMN <definitions>"
            problems.append(Problem(root.get("id", ""), name, f"{name} is not a {what} document"))
            continue
        trees[name] = root
    return trees


def _dmn_validator(tree) -> BpmnValidator | None:
    namespace = etree.QName(tree).namespace
    path = DMN_SCHEMAS.get(namespace)
    if path is None:
        return None
    if namespace not in _dmn_validators:
        _dmn_validators[namespace] = BpmnValidator(path)
    return _dmn_validators[namespace]


def _check_xsd(name: str, tree, validator: BpmnValidator, problems: list[Problem]) -> None:
    """Every XSD error of the file (lxml collects them all), placed on the element at its line."""
    document = copy.deepcopy(tree)
    validator.preprocess(document)
    by_line: dict[int, etree._Element] = {}
    for element in tree.iter():
        if isinstance(element.tag, str) and element.sourceline is not None:
            by_line.setdefault(element.sourceline, element)
    with _xsd_lock:
        valid = validator.validator.validate(document)
        errors = list(validator.validator.error_log) if not valid else []
    for error in errors:
        element = by_line.get(error.line)
        problems.append(Problem(_owner_id(element) if element is not None else "", name,
                                f"not valid BPMN/DMN (line {error.line}): {_short_xsd_message(error.message)}"))


def _check_with_spiffworkflow(process_id: str, trees: dict, dmn_trees: dict, problems: list[Problem],
                              complete: bool = True) -> None:
    """Run SpiffWorkflow's parser over every executable process and decision; report its errors."""
    parser = SpiffBpmnParser()  # XSD checked above, with every error rather than the first
    for name, tree in trees.items():
        try:
            parser.add_bpmn_xml(tree, filename=name)
        except (ValidationException, SpiffWorkflowException) as exc:
            problems.append(_from_library(exc, name))
    for name, tree in dmn_trees.items():
        try:
            parser.add_dmn_xml(tree, filename=name)
        except (ValidationException, SpiffWorkflowException, KeyError, IndexError) as exc:
            problems.append(_from_library(exc, name))
    executable = set(parser.get_process_ids())
    all_ids = {pid: tree for tree in trees.values() for pid in
               (p.get("id") for p in tree.iterfind(".//bpmn:process", NS))}
    if process_id not in all_ids:
        if complete:  # otherwise it may well be in the file that did not parse
            known = ", ".join(sorted(all_ids)) or "none"
            problems.append(Problem(process_id, "", f"no process with id '{process_id}' in the bundle (found: {known})"))
    elif process_id not in executable:
        problems.append(Problem(process_id, _file_of(trees, process_id),
                                f"process '{process_id}' is not executable: set isExecutable=\"true\""))
    for pid in sorted(executable):
        try:
            parser.get_spec(pid)
            if pid == process_id:
                parser.get_subprocess_specs(pid)
        except (ValidationException, SpiffWorkflowException) as exc:
            problems.append(_from_library(exc, _file_of(trees, pid)))
        except (KeyError, AttributeError, TypeError, ValueError, IndexError) as exc:
            problems.append(Problem(pid, _file_of(trees, pid), f"SpiffWorkflow cannot parse process {pid}: {exc!r}"))
    for decision_id, dmn_parser in parser.dmn_parsers.items():
        try:
            dmn_parser.parse()
        except (ValidationException, SpiffWorkflowException, KeyError, IndexError, AttributeError) as exc:
            problems.append(_from_library(exc, dmn_parser.filename or "", decision_id))


def _file_of(trees: dict, process_id: str) -> str:
    for name, tree in trees.items():
        if tree.find(f".//bpmn:process[@id='{process_id}']", NS) is not None:
            return name
    return ""


def _from_library(exc: Exception, file_name: str, element_id: str = "") -> Problem:
    if isinstance(exc, ValidationException):
        message = exc.args[0] if exc.args else str(exc)
        return Problem(exc.id or element_id, exc.file_name or file_name, str(message).split("\n")[0])
    if isinstance(exc, SpiffWorkflowException):
        return Problem(element_id, file_name, str(exc).split("\n")[0])
    return Problem(element_id, file_name, f"cannot be parsed: {exc!r}")


# ---------------------------------------------------------------------------------------------
# Element rules (on the XML, so they run even when the library gave up on a file)

def _check_elements(name: str, tree, problems: list[Problem]) -> None:
    for element in tree.iter():
        if not isinstance(element.tag, str) or etree.QName(element).namespace != BPMN_NS:
            continue
        local = _local(element)
        if local in _EVENT_DEFINITIONS:
            event = element.getparent()
            problems.append(Problem(_owner_id(event), name,
                                    f"{_describe(event)} uses a {_words(local)}: {UNSUPPORTED[local]}"))
        elif local in UNSUPPORTED:
            problems.append(Problem(element.get("id", ""), name,
                                    f"{_describe(element)} is not supported: {UNSUPPORTED[local]}"))
        elif local == "startEvent":
            definitions = [_local(d) for d in element if _local(d).endswith("EventDefinition")]
            if definitions and definitions[0] not in _EVENT_DEFINITIONS:
                problems.append(Problem(element.get("id", ""), name,
                                        f"{_describe(element)} has a {_words(definitions[0])}: a process starts "
                                        "when a case is opened; use a plain start event"))
        elif local == "subProcess" and element.get("triggeredByEvent") == "true":
            problems.append(Problem(element.get("id", ""), name,
                                    f"{_describe(element)} is an event sub-process, which is not supported; "
                                    "use boundary events"))


def _check_call_activities(name: str, tree, process_ids: set[str], problems: list[Problem]) -> None:
    for call in tree.iterfind(".//bpmn:callActivity", NS):
        called = call.get("calledElement")
        if not called:
            problems.append(Problem(call.get("id", ""), name, f"{_describe(call)} does not say which process it calls"))
        elif called not in process_ids:
            hint = _did_you_mean(called, process_ids)
            problems.append(Problem(call.get("id", ""), name,
                                    f"{_describe(call)} calls process '{called}', which is not in the bundle{hint}"))


def _did_you_mean(value: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(value, sorted(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _lanes_by_node(tree) -> dict[str, str]:
    """flow node id → lane name; nested lanes come later in the document, so the innermost wins
    (as in SpiffWorkflow's own index)."""
    lanes = {}
    for ref in tree.iterfind(".//bpmn:flowNodeRef", NS):
        if ref.text:
            lanes[ref.text.strip()] = (ref.getparent().get("name") or "").strip()
    return lanes


def _effective_lane(element, lanes: dict[str, str]) -> str | None:
    """A node's lane as SpiffWorkflow assigns it: an embedded sub-process's lane wins over the
    lanes of the nodes inside it."""
    holder = element.getparent()
    while holder is not None and _local(holder) not in ("subProcess", "process"):
        holder = holder.getparent()
    if holder is not None and _local(holder) == "subProcess":
        outer = _effective_lane(holder, lanes)
        if outer is not None:
            return outer
    return lanes.get(element.get("id", ""))


def _check_lanes(name: str, tree, roles: set[str], problems: list[Problem]) -> None:
    lanes = _lanes_by_node(tree)
    for task in tree.iterfind(".//bpmn:userTask", NS):
        lane = _effective_lane(task, lanes)
        if not lane:
            problems.append(Problem(task.get("id", ""), name,
                                    f"{_describe(task)} is in no lane: put it in a lane named after the role that "
                                    f"works it ({', '.join(sorted(roles))})"))
        elif lane not in roles:
            problems.append(Problem(task.get("id", ""), name,
                                    f"{_describe(task)} is in lane '{lane}', which is not a role that works tasks"
                                    f"{_did_you_mean(lane, roles)} (roles: {', '.join(sorted(roles))})"))


def _properties(element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in
            element.iterfind("bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NS)}


def form_problem(text: str | None, form_name: str) -> str | None:
    """Why ``text`` is not a usable JSON Schema form (None: it is)."""
    if text is None:
        return f"form '{form_name}' is not in the bundle"
    try:
        schema = json.loads(text)
    except ValueError as exc:
        return f"form '{form_name}' is not valid JSON: {exc}"
    if not isinstance(schema, dict):
        return f"form '{form_name}' must be a JSON object (a JSON Schema)"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"form '{form_name}' is not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
    return None


def _check_forms(name: str, tree, forms: Mapping[str, str], problems: list[Problem]) -> None:
    for task in tree.iterfind(".//bpmn:userTask", NS):
        properties = _properties(task)
        form = properties.get("formJsonSchemaFilename")
        if not form:
            problems.append(Problem(task.get("id", ""), name,
                                    f"{_describe(task)} has no form (formJsonSchemaFilename): whoever works it "
                                    "can only confirm it", severity="warning"))
        else:
            message = form_problem(forms.get(form), form)
            if message:
                problems.append(Problem(task.get("id", ""), name, f"{_describe(task)}: {message}"))
        ui = properties.get("formUiSchemaFilename")
        if ui:
            if ui not in forms:
                problems.append(Problem(task.get("id", ""), name, f"{_describe(task)}: UI schema '{ui}' is not in the bundle"))
            else:
                try:
                    json.loads(forms[ui])
                except ValueError as exc:
                    problems.append(Problem(task.get("id", ""), name,
                                            f"{_describe(task)}: UI schema '{ui}' is not valid JSON: {exc}"))


def _code_problem(check, source: str) -> str | None:
    try:
        check(source)
    except ScriptRejected as exc:
        return str(exc)
    return None


def _check_code(name: str, tree, problems: list[Problem]) -> None:
    """Scripts, pre/post scripts, conditions and multi-instance expressions compile (restricted)."""
    for task in tree.iterfind(".//bpmn:scriptTask", NS):
        script = task.find("bpmn:script", NS)
        if script is None or not (script.text or "").strip():
            problems.append(Problem(task.get("id", ""), name, f"{_describe(task)} has no script"))
            continue
        message = _code_problem(check_script, script.text)
        if message:
            problems.append(Problem(task.get("id", ""), name, f"script of {_describe(task)} is refused: {message}"))
    for tag in ("preScript", "postScript"):
        for script in tree.iterfind(f".//spiffworkflow:{tag}", NS):
            if (script.text or "").strip():
                message = _code_problem(check_script, script.text)
                if message:
                    owner = script.getparent().getparent()
                    problems.append(Problem(_owner_id(owner), name,
                                            f"{_words(tag)} of {_describe(owner)} is refused: {message}"))
    for flow in tree.iterfind(".//bpmn:sequenceFlow", NS):
        condition = flow.find("bpmn:conditionExpression", NS)
        if condition is None:
            continue
        text = (condition.text or "").strip()
        if not text:
            problems.append(Problem(flow.get("id", ""), name, f"{_describe(flow)} has an empty condition"))
            continue
        message = _code_problem(check_expression, text)
        if message:
            problems.append(Problem(flow.get("id", ""), name, f"condition of {_describe(flow)} is refused: {message}"))
    for loop in tree.iterfind(".//bpmn:multiInstanceLoopCharacteristics", NS):
        for tag in ("loopCardinality", "completionCondition"):
            expression = loop.find(f"bpmn:{tag}", NS)
            if expression is not None and (expression.text or "").strip():
                message = _code_problem(check_expression, expression.text)
                if message:
                    owner = loop.getparent()
                    problems.append(Problem(_owner_id(owner), name,
                                            f"{_words(tag)} of {_describe(owner)} is refused: {message}"))


# ---------------------------------------------------------------------------------------------
# DMN

def _dmn_children(element, local: str):
    return [child for child in element if _local(child) == local]


def _dmn_text(element) -> str:
    text = next((child for child in element if _local(child) == "text"), None)
    return (text.text or "").strip() if text is not None else ""


def _check_dmn(name: str, tree, problems: list[Problem]) -> None:
    for table in (e for e in tree.iter() if _local(e) == "decisionTable"):
        policy = (table.get("hitPolicy") or "UNIQUE").upper()
        if policy not in _DMN_HIT_POLICIES:
            problems.append(Problem(table.get("id", ""), name,
                                    f"decision table {table.get('id')} uses hit policy {policy}; SpiffWorkflow runs only "
                                    "UNIQUE (first match) and COLLECT"))
        inputs = []
        for column in _dmn_children(table, "input"):
            expression = next((c for c in column if _local(c) == "inputExpression"), None)
            text = _dmn_text(expression) if expression is not None else ""
            inputs.append(text)
            if not text:
                problems.append(Problem(column.get("id", ""), name, f"input {column.get('id')} has no expression"))
                continue
            message = _code_problem(check_expression, text)
            if message:
                problems.append(Problem(column.get("id", ""), name, f"input expression {text!r} is refused: {message}"))
        for rule in _dmn_children(table, "rule"):
            for index, entry in enumerate(_dmn_children(rule, "inputEntry")):
                text = _dmn_text(entry)
                if text in ("", "-"):
                    continue
                message = _input_entry_problem(inputs[index] if index < len(inputs) else "x", text)
                if message:
                    problems.append(Problem(entry.get("id", ""), name,
                                            f"rule {rule.get('id')}: input entry {text!r} is refused: {message}"))
            for entry in _dmn_children(rule, "outputEntry"):
                text = _dmn_text(entry)
                if text:
                    message = _code_problem(check_expression, text)
                    if message:
                        problems.append(Problem(entry.get("id", ""), name,
                                                f"rule {rule.get('id')}: output entry {text!r} is refused: {message}"))


_QUESTION_MARK = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")


def _input_entry_problem(input_expression: str, entry: str) -> str | None:
    """Compile an input entry the way SpiffWorkflow's DMN engine builds it (``?`` is the input;
    otherwise ``input == entry`` or ``input <entry>`` such as ``input >= 10``)."""
    if _QUESTION_MARK.search(entry):
        return _code_problem(check_expression, _QUESTION_MARK.sub("dmninputexpr", entry))
    first = _code_problem(check_expression, f"({input_expression}) == ({entry})")
    if first is None:
        return None
    if _code_problem(check_expression, f"{input_expression} {entry}") is None:
        return None
    return first


# ---------------------------------------------------------------------------------------------
# Timers, evaluated with representative data

def _sample_value(prop: Mapping):
    if "default" in prop:
        return copy.deepcopy(prop["default"])
    if prop.get("enum"):
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "string":
        return "2026-01-01" if prop.get("format") == "date" else "sample"
    if kind == "integer":
        return int(prop.get("minimum", 1))
    if kind == "number":
        return float(prop.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {key: _sample_value(value) for key, value in prop.get("properties", {}).items()
                if isinstance(value, Mapping)}
    return None


def _sample_data(process_id: str, trees: dict, dmn_trees: dict, forms: Mapping[str, str],
                 environment: RestrictedEnvironment, start: dict, problems: list[Problem]) -> dict:
    data = dict(start)
    for text in forms.values():
        try:
            schema = json.loads(text)
        except ValueError:
            continue
        if isinstance(schema, dict):
            for key, prop in (schema.get("properties") or {}).items():
                if isinstance(prop, Mapping):
                    data.setdefault(key, _sample_value(prop))
    for tree in dmn_trees.values():
        for table in (e for e in tree.iter() if _local(e) == "decisionTable"):
            outputs = [column.get("name") for column in _dmn_children(table, "output")]
            rules = _dmn_children(table, "rule")
            if not rules:
                continue
            for column, entry in zip(outputs, _dmn_children(rules[0], "outputEntry"), strict=False):
                if column:
                    try:
                        data.setdefault(column, environment.evaluate(_dmn_text(entry), {}))
                    except Exception:  # noqa: BLE001 - a sample value is best effort
                        pass
    # Scripts of the process being deployed first, then the rest, each in document order.
    ordered = sorted(trees.items(), key=lambda item: item[1].find(f".//bpmn:process[@id='{process_id}']", NS) is None)
    for name, tree in ordered:
        for task in tree.iterfind(".//bpmn:scriptTask", NS):
            script = task.find("bpmn:script", NS)
            if script is None or not (script.text or "").strip():
                continue
            context = copy.deepcopy(data)
            try:
                environment.execute(script.text, context)
            except (ScriptTimeout, ScriptLimitExceeded) as exc:
                # Sample values may miss a branch, but code that exhausts its budget on them
                # would stall every case that reaches it.
                problems.append(Problem(_owner_id(task), name,
                                        f"script of {_describe(task)} exceeds its limits on sample data: {exc}"))
                continue
            except Exception:  # noqa: BLE001 - a script failing on sample data is not a diagram error
                continue
            data.update(context)
    return data


def _check_timers(name: str, tree, environment: RestrictedEnvironment, data: dict, problems: list[Problem]) -> None:
    for definition in tree.iterfind(".//bpmn:timerEventDefinition", NS):
        event = definition.getparent()
        where = _describe(event)
        event_id = _owner_id(event)
        parts = [(child, _local(child)) for child in definition if _local(child) in ("timeDate", "timeDuration", "timeCycle")]
        if not parts or not (parts[0][0].text or "").strip():
            problems.append(Problem(event_id, name, f"timer of {where} has no time (date, duration or cycle)"))
            continue
        element, kind = parts[0]
        expression = element.text.strip()
        message = _code_problem(check_expression, expression)
        if message:
            problems.append(Problem(event_id, name, f"timer of {where}: expression {expression!r} is refused: {message}"))
            continue
        try:
            value = environment.evaluate(expression, copy.deepcopy(data))
        except NameError as exc:
            problems.append(Problem(event_id, name,
                                    f"timer of {where}: {expression!r} uses a name that no script, form or decision "
                                    f"provides ({exc})"))
            continue
        except Exception as exc:  # noqa: BLE001 - report whatever the expression does on sample data
            problems.append(Problem(event_id, name,
                                    f"timer of {where}: {expression!r} fails on sample data: "
                                    f"{type(exc).__name__}: {exc}"))
            continue
        message = _timer_value_problem(kind, value)
        if message:
            problems.append(Problem(event_id, name, f"timer of {where}: {expression!r} gives {value!r}, {message}"))


def duration_problem(value) -> str | None:
    """What is wrong with ``value`` as a timer duration ("P7D", "PT12H"), or None."""
    return _timer_value_problem("timeDuration", value)


def _timer_value_problem(kind: str, value) -> str | None:
    if not isinstance(value, str):
        return "which is not text; a timer needs an ISO-8601 string such as \"P7D\" (quotes included)"
    try:
        if kind == "timeDuration":
            if not value.upper().startswith("P"):
                return "not an ISO-8601 duration such as \"P7D\" or \"PT12H\""
            if not TimerEventDefinition.parse_iso_duration(value):
                return "an empty duration"
        elif kind == "timeDate":
            datetime.fromisoformat(value)
        else:
            if not value.upper().startswith("R"):
                return "not an ISO-8601 cycle such as \"R3/P1D\""
            TimerEventDefinition.parse_iso_recurring_interval(value)
    except Exception:  # noqa: BLE001 - the library raises a bare Exception for bad durations
        return {"timeDuration": "not an ISO-8601 duration such as \"P7D\" or \"PT12H\"",
                "timeDate": "not an ISO-8601 date-time such as \"2026-12-01T09:00:00+08:00\"",
                "timeCycle": "not an ISO-8601 cycle such as \"R3/P1D\""}[kind]
    return None


def referenced_forms(bpmn: Mapping[str, str]) -> set[str]:
    """File names of the forms (and UI schemas) the user tasks of these BPMN texts name.

    Files that do not parse are skipped: validate_bundle reports them.
    """
    names = set()
    for properties in _user_task_properties(bpmn).values():
        names |= {properties[key] for key in ("formJsonSchemaFilename", "formUiSchemaFilename") if properties.get(key)}
    return names


def user_task_forms(bpmn: Mapping[str, str]) -> dict[str, str]:
    """User task id → the form (formJsonSchemaFilename) it names."""
    return {task_id: properties["formJsonSchemaFilename"]
            for task_id, properties in _user_task_properties(bpmn).items() if properties.get("formJsonSchemaFilename")}


def _user_task_properties(bpmn: Mapping[str, str]) -> dict[str, dict[str, str]]:
    found = {}
    for file_name, text in bpmn.items():
        try:
            tree = parse_xml(text, file_name)
        except DiagramError:
            continue
        for task in tree.iterfind(".//bpmn:userTask", NS):
            found[task.get("id", "")] = _properties(task)
    return found
