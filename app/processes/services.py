"""Deploy process bundles and hand out the parsed spec of a version.

A bundle is the BPMN and DMN files of one process key plus the forms its user tasks name.
Deploying identical content again returns the existing version instead of a new one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
from sqlalchemy import func, select

from app import engine
from app.database import UnitOfWork
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.processes.models import ProcessFile, ProcessVersion


@dataclass
class Bundle:
    key: str
    bpmn: dict[str, str]
    dmn: dict[str, str] = field(default_factory=dict)
    forms: dict[str, str] = field(default_factory=dict)

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for kind, files in (("bpmn", self.bpmn), ("dmn", self.dmn), ("form", self.forms)):
            for name in sorted(files):
                digest.update(f"{kind}\0{name}\0".encode())
                digest.update(files[name].encode("utf-8"))
                digest.update(b"\0")
        return digest.hexdigest()


def read_bundle(workflow_dir: str | Path, forms_dir: str | Path, key: str) -> Bundle:
    """Read a bundle from a directory of .bpmn/.dmn files; forms come from ``forms_dir``."""
    workflow_dir, forms_dir = Path(workflow_dir), Path(forms_dir)
    bpmn = {p.name: p.read_text("utf-8") for p in sorted(workflow_dir.glob("*.bpmn"))}
    dmn = {p.name: p.read_text("utf-8") for p in sorted(workflow_dir.glob("*.dmn"))}
    bundle = Bundle(key=key, bpmn=bpmn, dmn=dmn)
    parsed = _parse(bundle)
    for name in sorted({t.form for t in parsed.user_tasks.values() if t.form}):
        path = forms_dir / name
        if path.is_file():
            bundle.forms[name] = path.read_text("utf-8")
    return bundle


def _parse(bundle: Bundle) -> engine.ParsedProcess:
    try:
        return engine.parse_bundle(bundle.key, bundle.bpmn, bundle.dmn)
    except engine.DiagramError as exc:
        raise InvalidInput(str(exc), errors={exc.element_id or exc.file_name or "bundle": [str(exc)]}) from None


def validate_bundle(bundle: Bundle) -> engine.ParsedProcess:
    """Parse the bundle and check every user task's form exists and is a valid JSON Schema."""
    parsed = _parse(bundle)
    errors: dict[str, list[str]] = {}
    for task in parsed.user_tasks.values():
        if not task.form:
            errors.setdefault(task.spec_name, []).append(
                f"user task '{task.spec_name}' has no formJsonSchemaFilename property"
            )
            continue
        text = bundle.forms.get(task.form)
        if text is None:
            errors.setdefault(task.spec_name, []).append(f"form '{task.form}' is missing from the bundle")
            continue
        try:
            jsonschema.Draft202012Validator.check_schema(json.loads(text))
        except (ValueError, jsonschema.SchemaError) as exc:
            message = getattr(exc, "message", str(exc))
            errors.setdefault(task.spec_name, []).append(f"form '{task.form}' is not a valid JSON Schema: {message}")
    if errors:
        raise InvalidInput("the bundle is not deployable", errors=errors)
    return parsed


def deploy(bundle: Bundle, author_id: int | None = None, note: str | None = None) -> tuple[ProcessVersion, bool]:
    """Store the bundle as the next version of its key; return (version, created)."""
    validate_bundle(bundle)
    content_hash = bundle.content_hash()
    with UnitOfWork() as uow:
        latest = latest_version(bundle.key)
        if latest is not None and latest.content_hash == content_hash:
            return latest, False
        number = (db.session.scalar(select(func.max(ProcessVersion.version)).where(ProcessVersion.key == bundle.key)) or 0) + 1
        version = ProcessVersion(key=bundle.key, version=number, content_hash=content_hash, author_id=author_id, note=note)
        for kind, files in (("bpmn", bundle.bpmn), ("dmn", bundle.dmn), ("form", bundle.forms)):
            for name, content in files.items():
                version.files.append(ProcessFile(name=name, kind=kind, content=content))
        db.session.add(version)
        uow.commit()
    return version, True


def latest_version(key: str) -> ProcessVersion | None:
    return db.session.scalar(
        select(ProcessVersion).where(ProcessVersion.key == key).order_by(ProcessVersion.version.desc()).limit(1)
    )


def get_version(version_id: int) -> ProcessVersion:
    version = db.session.get(ProcessVersion, version_id)
    if version is None:
        raise NotFound(f"process version {version_id} not found")
    return version


def list_versions() -> list[ProcessVersion]:
    return list(db.session.scalars(select(ProcessVersion).order_by(ProcessVersion.key, ProcessVersion.version)))


def parsed_process(version: ProcessVersion) -> engine.ParsedProcess:
    """The parsed spec of a version, parsed once per process and then served from memory."""
    return engine.spec_cache.get(
        version.content_hash, lambda: engine.parse_bundle(version.key, version.file_map("bpmn"), version.file_map("dmn"))
    )


_form_cache: dict[tuple[str, str], dict] = {}


def form_schema(version: ProcessVersion, form_name: str) -> dict:
    """The JSON Schema a task of this version names (versions are immutable, so cache it)."""
    key = (version.content_hash, form_name)
    schema = _form_cache.get(key)
    if schema is None:
        text = version.file_map("form").get(form_name)
        if text is None:
            raise NotFound(f"form {form_name} is not part of {version.key} v{version.version}")
        schema = _form_cache[key] = json.loads(text)
    return schema
