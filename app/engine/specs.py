"""Parse and validate deployable bundles; keep one parsed spec per process version in memory.

Parsing the lifecycle bundle costs ~10 ms and rebuilding a spec from its serialized form was over
half of every instance load (ENGINE-NOTES.md), so a version is parsed once and the resulting spec
objects are reused by every case that runs on it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from app.engine.errors import DiagramError

# Diagrams come from policy staff and integrators: no DTDs, entities or network look-ups.
_SAFE_XML = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False
)

MAX_FILE_BYTES = 2 * 1024 * 1024


def parse_xml(text: str | bytes, file_name: str):
    """Parse one XML file safely; refuse DTDs (entity expansion) and oversized files."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_FILE_BYTES:
        raise DiagramError(f"{file_name} is larger than {MAX_FILE_BYTES // 1024} KiB", file_name=file_name)
    try:
        root = etree.fromstring(raw, parser=_SAFE_XML)
    except etree.XMLSyntaxError as exc:
        raise DiagramError(f"{file_name} is not well-formed XML: {exc}", file_name=file_name, line=exc.lineno) from None
    if root.getroottree().docinfo.doctype:
        raise DiagramError(f"{file_name} declares a DTD; DTDs and entities are not accepted", file_name=file_name)
    return root


@dataclass
class UserTaskInfo:
    """What the rest of the app needs to know about a user task spec."""

    spec_name: str
    title: str
    lane: str | None
    form: str | None
    properties: dict = field(default_factory=dict)


@dataclass
class ParsedProcess:
    """A parsed, validated bundle: the top process spec plus the specs it calls."""

    process_id: str
    spec: object
    subprocess_specs: dict
    user_tasks: dict[str, UserTaskInfo]
    #: name of every task spec (all processes) → its BPMN name, for readable events
    titles: dict[str, str]


def parse_bundle(process_id: str, bpmn: dict[str, str], dmn: dict[str, str] | None = None) -> ParsedProcess:
    """Parse BPMN and DMN texts (file name → content) into specs, validating against the XSD.

    Raises DiagramError naming the file and element when anything is wrong.
    """
    parser = SpiffBpmnParser(validator=VALIDATOR)
    current_file = ""
    try:
        for name, text in sorted(bpmn.items()):
            current_file = name
            parser.add_bpmn_xml(parse_xml(text, name), filename=name)
        for name, text in sorted((dmn or {}).items()):
            current_file = name
            parser.add_dmn_xml(parse_xml(text, name), filename=name)
        current_file = ""
        if process_id not in parser.get_process_ids():
            known = ", ".join(sorted(parser.get_process_ids())) or "none"
            raise DiagramError(f"no process with id '{process_id}' (found: {known})", element_id=process_id)
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except DiagramError:
        raise
    except ValidationException as exc:
        raise DiagramError(
            str(exc).split("\n")[0], element_id=exc.id, file_name=exc.file_name or current_file,
            line=exc.line_number or None,
        ) from None
    except SpiffWorkflowException as exc:
        raise DiagramError(str(exc), file_name=current_file) from None

    user_tasks: dict[str, UserTaskInfo] = {}
    titles: dict[str, str] = {}
    for process_spec in [spec, *subprocess_specs.values()]:
        for task_spec in process_spec.task_specs.values():
            titles[task_spec.name] = getattr(task_spec, "bpmn_name", None) or task_spec.name
            if isinstance(task_spec, UserTask):
                properties = getattr(task_spec, "extensions", {}).get("properties", {})
                user_tasks[task_spec.name] = UserTaskInfo(
                    spec_name=task_spec.name,
                    title=titles[task_spec.name],
                    lane=task_spec.lane,
                    form=properties.get("formJsonSchemaFilename"),
                    properties=dict(properties),
                )
    return ParsedProcess(process_id, spec, subprocess_specs, user_tasks, titles)


class SpecCache:
    """Parsed specs by content hash: versions are immutable, so an entry never goes stale."""

    def __init__(self):
        self._specs: dict[str, ParsedProcess] = {}
        self._lock = threading.Lock()

    def get(self, key: str, loader) -> ParsedProcess:
        parsed = self._specs.get(key)
        if parsed is None:
            with self._lock:
                parsed = self._specs.get(key)
                if parsed is None:
                    parsed = loader()
                    self._specs[key] = parsed
        return parsed

    def clear(self):
        with self._lock:
            self._specs.clear()


spec_cache = SpecCache()

