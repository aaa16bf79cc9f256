"""Process versions: validate and deploy bundles, edit drafts, map regions to variants, and move
running cases to another version.

A bundle is the BPMN and DMN files of one process key plus the forms its user tasks name.
Deploying identical content again returns the existing version instead of a new one. A version
is immutable; the modeler edits *drafts* (one row per file) that become the next version when an
integrator deploys them. New cases pick their version through the variant mapping (the most
specific org unit on the case's path wins, else the default key's latest version); running
cases keep theirs until they are migrated.

Who may do what: policy editors save drafts; integrators deploy, map variants and migrate (the
CLI is the operator's and passes no actor).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app import clock, engine
from app.database import UnitOfWork
from app.engine.specs import MAX_FILE_BYTES
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.extensions import db
from app.org.models import OrgUnit, User
from app.org.roles import TASK_ROLES
from app.processes.models import ProcessDraft, ProcessFile, ProcessVariant, ProcessVersion

#: Roles of the authoring work (see app/org/roles.py).
POLICY_EDITOR, INTEGRATOR = "policy_editor", "integrator"

#: File names in bundles and drafts: no directories, one of the known extensions.
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,150}\.(bpmn|dmn|json)$")
KEY = re.compile(r"^[a-z][a-z0-9_]{1,79}$")

#: What a new case's workflow starts with (app.cases.services.start_case): representative
#: values so that validation can evaluate timer expressions the way a real case would.
SAMPLE_START_DATA = {
    "title": "示例纠纷", "description": "", "category": "neighbour", "channel": "walk_in",
    "risk_level": "low", "people_involved": 2, "parties": [], "location": None,
    "case_number": "JF20260000001", "time_limit_overrides": {},
}


def kind_of(file_name: str) -> str:
    suffix = file_name.rsplit(".", 1)[-1].lower()
    return {"bpmn": "bpmn", "dmn": "dmn", "json": "form"}.get(suffix, "")


@dataclass
class Bundle:
    key: str
    bpmn: dict[str, str]
    dmn: dict[str, str] = field(default_factory=dict)
    forms: dict[str, str] = field(default_factory=dict)
    #: the BPMN process that runs (None: the process whose id is the key)
    process_id: str | None = None

    @property
    def top_process_id(self) -> str:
        return self.process_id or self.key

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        if self.process_id and self.process_id != self.key:
            digest.update(f"process\0{self.process_id}\0".encode())
        for kind, files in (("bpmn", self.bpmn), ("dmn", self.dmn), ("form", self.forms)):
            for name in sorted(files):
                digest.update(f"{kind}\0{name}\0".encode())
                digest.update(files[name].encode("utf-8"))
                digest.update(b"\0")
        return digest.hexdigest()

    def files(self) -> dict[str, str]:
        return {**self.bpmn, **self.dmn, **self.forms}

    def put(self, file_name: str, content: str) -> None:
        {"bpmn": self.bpmn, "dmn": self.dmn, "form": self.forms}[kind_of(file_name)][file_name] = content

    @classmethod
    def from_files(cls, key: str, files: dict[str, str], process_id: str | None = None) -> Bundle:
        """A bundle from file name → text (an upload); names decide the kind."""
        bundle = cls(key=key, bpmn={}, process_id=process_id)
        errors = {}
        for name, content in files.items():
            if not FILE_NAME.match(name or ""):
                errors[name or "?"] = ["file names are letters, digits, _ . - and end in .bpmn, .dmn or .json"]
            elif not isinstance(content, str):
                errors[name] = ["file content must be text"]
            else:
                bundle.put(name, content)
        if errors:
            raise InvalidInput("the bundle has files that cannot be used", errors=errors)
        return bundle


#: Limits for an uploaded zip bundle (checked before anything is decompressed).
ZIP_MAX_FILES = 200
ZIP_MAX_TOTAL = 16 * 1024 * 1024


def bundle_from_zip(key: str, data: bytes, process_id: str | None = None) -> Bundle:
    """A bundle from an uploaded zip: its .bpmn, .dmn and .json files, at any depth.

    Folder names are ignored (the file name is what a diagram refers to); the declared sizes are
    checked before decompressing, so a zip bomb is refused without being expanded.
    """
    import io
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("the upload is not a zip file", errors={"bundle": ["not a zip file"]}) from None
    entries = [info for info in archive.infolist() if not info.is_dir()
               and not any(part.startswith((".", "__MACOSX")) for part in info.filename.split("/"))]
    if len(entries) > ZIP_MAX_FILES or sum(info.file_size for info in entries) > ZIP_MAX_TOTAL:
        raise InvalidInput("the zip is too large", errors={"bundle": [
            f"at most {ZIP_MAX_FILES} files and {ZIP_MAX_TOTAL // (1024 * 1024)} MiB uncompressed"]})
    files: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for info in entries:
        name = info.filename.rsplit("/", 1)[-1]
        if not kind_of(name):
            continue
        if info.file_size > MAX_FILE_BYTES:
            errors.setdefault(name, []).append(f"larger than {MAX_FILE_BYTES // 1024} KiB")
            continue
        if name in files:
            errors.setdefault(name, []).append("appears twice in the zip")
            continue
        with archive.open(info) as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        try:
            files[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            errors.setdefault(name, []).append("is not UTF-8 text")
    if errors:
        raise InvalidInput("the zip has files that cannot be used", errors=errors)
    return Bundle.from_files(key, files, process_id)


# ---------------------------------------------------------------------------------------------
# Reading bundles from directories (workflows/<key>/, or a variant directory)

def read_bundle(workflow_dir: str | Path, forms_dir: str | Path, key: str) -> Bundle:
    """Read a bundle from a directory of .bpmn/.dmn files; forms come from ``forms_dir``.

    A directory with a ``variant.json`` is a variant of another bundle directory (see
    :func:`read_variant`).
    """
    workflow_dir, forms_dir = Path(workflow_dir), Path(forms_dir)
    if (workflow_dir / "variant.json").is_file():
        return read_variant(workflow_dir, forms_dir, key)
    bpmn = {p.name: p.read_text("utf-8") for p in sorted(workflow_dir.glob("*.bpmn"))}
    dmn = {p.name: p.read_text("utf-8") for p in sorted(workflow_dir.glob("*.dmn"))}
    bundle = Bundle(key=key, bpmn=bpmn, dmn=dmn)
    _add_forms(bundle, [forms_dir])
    return bundle


def _add_forms(bundle: Bundle, directories: list[Path]) -> None:
    """Add the forms the user tasks name, from the first directory that has each."""
    for name in sorted(engine.referenced_forms(bundle.bpmn)):
        for directory in directories:
            path = directory / name
            if path.is_file():
                bundle.forms[name] = path.read_text("utf-8")
                break


def read_variant(variant_dir: Path, forms_dir: Path, key: str) -> Bundle:
    """Read a variant: another bundle directory with a few exact text replacements.

    ``variant.json``::

        {"extends": "dispute_lifecycle",          # sibling directory with the base bundle
         "process_id": "dispute_lifecycle",       # optional; default: the base's key
         "description": "...",
         "replace": [{"file": "dispute_lifecycle.bpmn", "old": "...", "new": "..."}]}

    Each ``old`` text must occur exactly once in its file, so a base that changed under the
    variant fails loudly instead of silently losing the variant's change. ``.bpmn``/``.dmn``/
    ``.json`` files in the variant directory replace the base's files of the same name.
    """
    try:
        spec = json.loads((variant_dir / "variant.json").read_text("utf-8"))
        base_name = spec["extends"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{variant_dir}/variant.json is not valid: {exc}",
                           errors={"variant.json": [str(exc)]}) from None
    base_dir = variant_dir.parent / base_name
    if not base_dir.is_dir() or (base_dir / "variant.json").exists():
        raise InvalidInput(f"variant {key} extends {base_name}, which is not a bundle directory",
                           errors={"variant.json": [f"no bundle directory {base_dir}"]})
    bundle = Bundle(key=key, bpmn={p.name: p.read_text("utf-8") for p in sorted(base_dir.glob("*.bpmn"))},
                    dmn={p.name: p.read_text("utf-8") for p in sorted(base_dir.glob("*.dmn"))},
                    process_id=spec.get("process_id") or base_name)
    for path in sorted(variant_dir.iterdir()):
        if path.name != "variant.json" and kind_of(path.name):
            bundle.put(path.name, path.read_text("utf-8"))
    errors: dict[str, list[str]] = {}
    for number, change in enumerate(spec.get("replace", []), 1):
        name, old, new = change.get("file"), change.get("old"), change.get("new")
        files = {"bpmn": bundle.bpmn, "dmn": bundle.dmn, "form": bundle.forms}.get(kind_of(name or ""))
        if files is None or name not in files or not isinstance(old, str) or not isinstance(new, str):
            errors.setdefault(f"replace[{number}]", []).append(f"needs file (in the bundle), old and new; got {change}")
            continue
        count = files[name].count(old)
        if count != 1:
            errors.setdefault(f"replace[{number}]", []).append(
                f"{old!r} occurs {count} times in {name}; it must occur exactly once")
            continue
        files[name] = files[name].replace(old, new)
    if errors:
        raise InvalidInput(f"variant {key} does not apply to {base_name}", errors=errors)
    _add_forms(bundle, [variant_dir, forms_dir])
    return bundle


# ---------------------------------------------------------------------------------------------
# Validation and deployment

class BundleInvalid(InvalidInput):
    """Validation found errors; ``problems`` lists every one ({element_id, file, message, ...})."""


def check_bundle(bundle: Bundle) -> list[engine.Problem]:
    """Every problem of the bundle (errors and warnings), without raising."""
    from app.cases.services import DIAGRAM_HELPERS  # the helpers diagram code may call at run time

    return engine.validate_bundle(
        bundle.top_process_id, bundle.bpmn, bundle.dmn, bundle.forms,
        roles=TASK_ROLES, helpers=DIAGRAM_HELPERS, sample_data=SAMPLE_START_DATA,
    )


def _raise_for(problems: list[engine.Problem]) -> None:
    errors = engine.errors_only(problems)
    if not errors:
        return
    by_element: dict[str, list[str]] = {}
    for problem in errors:
        by_element.setdefault(problem.element_id or problem.file or "bundle", []).append(problem.message)
    raise BundleInvalid(f"the bundle is not deployable: {len(errors)} problem(s)", errors=by_element,
                        problems=[p.as_dict() for p in problems])


def validate_bundle(bundle: Bundle) -> engine.ParsedProcess:
    """Check every rule (raise BundleInvalid with all problems), then parse the bundle."""
    return _validate(bundle)[0]


def _validate(bundle: Bundle) -> tuple[engine.ParsedProcess, list[engine.Problem]]:
    problems = check_bundle(bundle)
    _raise_for(problems)
    try:
        return engine.parse_bundle(bundle.top_process_id, bundle.bpmn, bundle.dmn), problems
    except engine.DiagramError as exc:  # validation should have said so; never deploy it anyway
        raise BundleInvalid(str(exc), errors={exc.element_id or exc.file_name or "bundle": [str(exc)]},
                            problems=[{**exc.as_dict(), "severity": "error"}]) from None


def has_role(user: User | None, role: str) -> bool:
    return user is not None and any(grant.role == role for grant in user.grants)


def require_role(user: User | None, role: str, what: str) -> None:
    """Refuse unless ``user`` holds ``role`` (None is the operator at the command line)."""
    if user is not None and not has_role(user, role):
        raise Forbidden(f"{what} needs the {role} role")


def deploy(bundle: Bundle, author_id: int | None = None, note: str | None = None) -> tuple[ProcessVersion, bool]:
    """Store the bundle as the next version of its key; return (version, created)."""
    version, created, _warnings = deploy_checked(bundle, author_id, note)
    return version, created


def deploy_checked(bundle: Bundle, author_id: int | None = None,
                   note: str | None = None) -> tuple[ProcessVersion, bool, list[engine.Problem]]:
    """Like deploy, also returning the warnings validation found (they do not block)."""
    if not KEY.match(bundle.key or ""):
        raise InvalidInput("a process key is lower-case letters, digits and _", errors={"key": [bundle.key or ""]})
    _parsed, problems = _validate(bundle)
    warnings = [p for p in problems if p.severity != "error"]
    content_hash = bundle.content_hash()
    with UnitOfWork() as uow:
        latest = latest_version(bundle.key)
        if latest is not None and latest.content_hash == content_hash:
            return latest, False, warnings
        number = (db.session.scalar(select(func.max(ProcessVersion.version)).where(ProcessVersion.key == bundle.key)) or 0) + 1
        process_id = bundle.process_id if bundle.process_id and bundle.process_id != bundle.key else None
        version = ProcessVersion(key=bundle.key, version=number, content_hash=content_hash, author_id=author_id,
                                 note=note, process_id=process_id)
        for kind, files in (("bpmn", bundle.bpmn), ("dmn", bundle.dmn), ("form", bundle.forms)):
            for name, content in files.items():
                version.files.append(ProcessFile(name=name, kind=kind, content=content))
        db.session.add(version)
        try:
            uow.commit()
        except IntegrityError:
            raise Conflict(f"another deployment of {bundle.key} happened at the same moment; deploy again") from None
    return version, True, warnings


def deploy_as(actor: User | None, bundle: Bundle,
              note: str | None = None) -> tuple[ProcessVersion, bool, list[engine.Problem]]:
    """Deploy for an integrator (API, web) or the operator (CLI: actor None); also the warnings."""
    require_role(actor, INTEGRATOR, "deploying a process version")
    return deploy_checked(bundle, author_id=actor.id if actor else None, note=note)


def bundle_of(version: ProcessVersion, key: str | None = None) -> Bundle:
    return Bundle(key=key or version.key, bpmn=version.file_map("bpmn"), dmn=version.file_map("dmn"),
                  forms=version.file_map("form"), process_id=version.top_process_id)


# ---------------------------------------------------------------------------------------------
# Versions

def latest_version(key: str) -> ProcessVersion | None:
    return db.session.scalar(
        select(ProcessVersion).where(ProcessVersion.key == key).order_by(ProcessVersion.version.desc()).limit(1)
    )


def get_version(version_id: int) -> ProcessVersion:
    version = db.session.get(ProcessVersion, version_id)
    if version is None:
        raise NotFound(f"process version {version_id} not found")
    return version


def find_version(key: str, number: int | None = None) -> ProcessVersion:
    """``key`` v``number`` (latest without a number)."""
    if number is None:
        version = latest_version(key)
    else:
        version = db.session.scalar(select(ProcessVersion).where(ProcessVersion.key == key,
                                                                 ProcessVersion.version == number))
    if version is None:
        raise NotFound(f"process {key}{f' v{number}' if number else ''} is not deployed")
    return version


def parse_version_ref(ref: str) -> ProcessVersion:
    """A version named on the command line: ``KEY``, ``KEY:N``, ``KEY@N`` or a numeric id."""
    if ref.isdigit():
        return get_version(int(ref))
    key, _, number = ref.replace("@", ":").partition(":")
    if number and not number.lstrip("v").isdigit():
        raise InvalidInput(f"not a version: {ref}", errors={"version": ["KEY, KEY:N or an id"]})
    return find_version(key, int(number.lstrip("v")) if number else None)


def list_versions(key: str | None = None) -> list[ProcessVersion]:
    query = select(ProcessVersion).order_by(ProcessVersion.key, ProcessVersion.version)
    if key:
        query = query.where(ProcessVersion.key == key)
    return list(db.session.scalars(query))


def list_keys() -> list[str]:
    keys = set(db.session.scalars(select(ProcessVersion.key).distinct()))
    keys |= set(db.session.scalars(select(ProcessDraft.key).distinct()))
    return sorted(keys)


def diff_versions(old: ProcessVersion, new: ProcessVersion) -> list[dict]:
    """A unified diff per file that differs: [{file, kind, status, diff}]."""
    old_files = {f.name: f for f in old.files}
    new_files = {f.name: f for f in new.files}
    result = []
    for name in sorted(set(old_files) | set(new_files)):
        before = old_files[name].content if name in old_files else ""
        after = new_files[name].content if name in new_files else ""
        if name in old_files and name in new_files and before == after:
            continue
        status = "added" if name not in old_files else "removed" if name not in new_files else "changed"
        text = "".join(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            fromfile=f"{old.key}/v{old.version}/{name}", tofile=f"{new.key}/v{new.version}/{name}"))
        kind = (new_files.get(name) or old_files.get(name)).kind
        result.append({"file": name, "kind": kind, "status": status, "diff": text})
    if old.top_process_id != new.top_process_id:
        result.insert(0, {"file": "", "kind": "", "status": "process",
                          "diff": f"runs process {old.top_process_id} → {new.top_process_id}\n"})
    return result


def step_changes(old: ProcessVersion, new: ProcessVersion) -> dict[str, list[str]]:
    """The BPMN elements ``new`` adds and removes compared with ``old``."""
    return engine.compare_versions(parsed_process(old), parsed_process(new))


def parsed_process(version: ProcessVersion) -> engine.ParsedProcess:
    """The parsed spec of a version, parsed once per process and then served from memory."""
    return engine.spec_cache.get(version.content_hash, lambda: _parse(version))


def _content_hash(version_id: int) -> str:
    """A version's content hash, remembered per app (per database): versions never change."""
    hashes = current_app.extensions.setdefault("process_version_hashes", {})
    content_hash = hashes.get(version_id)
    if content_hash is None:
        version = db.session.get(ProcessVersion, version_id)
        if version is None:
            raise NotFound(f"process version {version_id} not found")
        content_hash = hashes[version_id] = version.content_hash
    return content_hash


def parsed_process_of(version_id: int) -> engine.ParsedProcess:
    """:func:`parsed_process` by id: a case's every step needs it, and rarely its version row."""
    return engine.spec_cache.get(_content_hash(version_id), lambda: _parse(db.session.get(ProcessVersion, version_id)))


def _parse(version: ProcessVersion) -> engine.ParsedProcess:
    return engine.parse_bundle(version.top_process_id, version.file_map("bpmn"), version.file_map("dmn"))


_form_cache: dict[tuple[str, str], dict] = {}


def form_schema(version: ProcessVersion, form_name: str) -> dict:
    """The JSON Schema a task of this version names (versions are immutable, so cache it)."""
    return _form_schema(version.content_hash, form_name, lambda: version)


def form_schema_of(version_id: int, form_name: str) -> dict:
    return _form_schema(_content_hash(version_id), form_name, lambda: db.session.get(ProcessVersion, version_id))


def _form_schema(content_hash: str, form_name: str, version_row) -> dict:
    key = (content_hash, form_name)
    schema = _form_cache.get(key)
    if schema is None:
        version = version_row()
        text = version.file_map("form").get(form_name)
        if text is None:
            raise NotFound(f"form {form_name} is not part of {version.key} v{version.version}")
        schema = _form_cache[key] = json.loads(text)
    return schema


# ---------------------------------------------------------------------------------------------
# Drafts (the modeler and the form editor)

@dataclass
class Workbench:
    """What the editor shows for a key: the version it builds on, with drafts laid over it."""

    key: str
    base: ProcessVersion | None
    bundle: Bundle
    drafts: dict[str, ProcessDraft]


def drafts_of(key: str) -> dict[str, ProcessDraft]:
    rows = db.session.scalars(select(ProcessDraft).where(ProcessDraft.key == key).order_by(ProcessDraft.file_name))
    return {row.file_name: row for row in rows}


def workbench(key: str, version_id: int | None = None, with_drafts: bool = True) -> Workbench:
    """The files of ``key``'s next version as the editor sees them.

    The base is the version the drafts were opened from, else ``version_id``, else the key's
    latest version; drafts (unless ``with_drafts`` is false) replace the base's files.
    """
    drafts = drafts_of(key) if with_drafts else {}
    base = None
    if version_id is not None:
        base = get_version(version_id)
    elif drafts:
        base = next((d.base_version for d in drafts.values() if d.base_version is not None), None)
    if base is None:
        base = latest_version(key)
    if base is None and not drafts:
        raise NotFound(f"process {key} has no version and no drafts")
    bundle = bundle_of(base, key) if base is not None else Bundle(key=key, bpmn={})
    for name, draft in drafts.items():
        bundle.put(name, draft.content)
    return Workbench(key, base, bundle, drafts)


def check_workbench(key: str, overrides: dict[str, str] | None = None, version_id: int | None = None,
                    with_drafts: bool = True) -> list[engine.Problem]:
    """The problems of ``key``'s next version with ``overrides`` (file → unsaved text) laid over it."""
    bench = workbench(key, version_id, with_drafts)
    for name, content in (overrides or {}).items():
        if not FILE_NAME.match(name or "") or not isinstance(content, str):
            raise InvalidInput("cannot check that file", errors={"file": [str(name)]})
        bench.bundle.put(name, content)
    return check_bundle(bench.bundle)


def save_draft(actor: User | None, key: str, file_name: str, content: str,
               base_version_id: int | None = None) -> tuple[ProcessDraft, list[engine.Problem]]:
    """Save one file as a draft (even if it has problems) and return the bundle's problems."""
    require_role(actor, POLICY_EDITOR, "saving a draft")
    errors = {}
    if not KEY.match(key or ""):
        errors["key"] = ["lower-case letters, digits and _"]
    if not FILE_NAME.match(file_name or ""):
        errors["file_name"] = ["letters, digits, _ . - and .bpmn, .dmn or .json"]
    if not isinstance(content, str) or not content.strip():
        errors["content"] = ["empty"]
    elif len(content.encode("utf-8")) > MAX_FILE_BYTES:
        errors["content"] = [f"larger than {MAX_FILE_BYTES // 1024} KiB"]
    if errors:
        raise InvalidInput("the draft cannot be saved", errors=errors)
    if base_version_id is not None:
        get_version(base_version_id)
    with UnitOfWork() as uow:
        draft = db.session.scalar(select(ProcessDraft).where(ProcessDraft.key == key,
                                                             ProcessDraft.file_name == file_name))
        if draft is None:
            draft = ProcessDraft(key=key, file_name=file_name, kind=kind_of(file_name))
            db.session.add(draft)
        draft.content = content
        if base_version_id is not None or draft.base_version_id is None:
            draft.base_version_id = base_version_id or getattr(latest_version(key), "id", None)
        draft.author_id = actor.id if actor else None
        draft.updated_at = clock.now()
        uow.commit()
    return draft, check_bundle(workbench(key).bundle)


def discard_drafts(actor: User | None, key: str, file_name: str | None = None) -> int:
    require_role(actor, POLICY_EDITOR, "discarding drafts")
    with UnitOfWork() as uow:
        query = delete(ProcessDraft).where(ProcessDraft.key == key)
        if file_name:
            query = query.where(ProcessDraft.file_name == file_name)
        count = db.session.execute(query).rowcount
        uow.commit()
    return count


def start_variant(actor: User | None, source: ProcessVersion, new_key: str) -> Workbench:
    """Open ``source`` as drafts of a new key (a regional variant to edit and deploy)."""
    require_role(actor, POLICY_EDITOR, "starting a variant")
    if not KEY.match(new_key or ""):
        raise InvalidInput("a process key is lower-case letters, digits and _", errors={"key": [new_key or ""]})
    if latest_version(new_key) is not None or drafts_of(new_key):
        raise Conflict(f"{new_key} already exists; open it instead")
    with UnitOfWork() as uow:
        for file in source.files:
            db.session.add(ProcessDraft(key=new_key, file_name=file.name, kind=file.kind, content=file.content,
                                        base_version_id=source.id, author_id=actor.id if actor else None,
                                        updated_at=clock.now()))
        uow.commit()
    return workbench(new_key)


def deploy_drafts(actor: User | None, key: str,
                  note: str | None = None) -> tuple[ProcessVersion, bool, list[engine.Problem]]:
    """Deploy the key's drafts over their base as the next version, then clear the drafts.

    Returns (version, created, warnings). Identical content clears the drafts too: they are
    what is deployed already.
    """
    require_role(actor, INTEGRATOR, "deploying a process version")
    bench = workbench(key)
    version, created, warnings = deploy_checked(bench.bundle, author_id=actor.id if actor else None, note=note)
    with UnitOfWork() as uow:
        db.session.execute(delete(ProcessDraft).where(ProcessDraft.key == key))
        uow.commit()
    return version, created, warnings


# ---------------------------------------------------------------------------------------------
# Variants: which version new cases use, per region

def list_variants() -> list[ProcessVariant]:
    return list(db.session.scalars(select(ProcessVariant).join(OrgUnit).order_by(OrgUnit.path)))


def set_variant(actor: User | None, unit_code: str, key: str, version_number: int | None = None,
                note: str | None = None) -> ProcessVariant:
    """New cases in ``unit_code``'s subtree use ``key`` (v``version_number``, or its latest)."""
    require_role(actor, INTEGRATOR, "mapping a region to a variant")
    unit = _unit(unit_code)
    pinned = find_version(key, version_number) if version_number is not None else None
    if pinned is None and latest_version(key) is None:
        raise NotFound(f"process {key} is not deployed")
    with UnitOfWork() as uow:
        variant = db.session.scalar(select(ProcessVariant).where(ProcessVariant.org_unit_id == unit.id))
        if variant is None:
            variant = ProcessVariant(org_unit_id=unit.id)
            db.session.add(variant)
        variant.key, variant.version_id, variant.note = key, pinned.id if pinned else None, note
        variant.updated_by_id = actor.id if actor else None
        variant.updated_at = clock.now()
        uow.commit()
    return variant


def clear_variant(actor: User | None, unit_code: str) -> bool:
    require_role(actor, INTEGRATOR, "mapping a region to a variant")
    unit = _unit(unit_code)
    with UnitOfWork() as uow:
        count = db.session.execute(delete(ProcessVariant).where(ProcessVariant.org_unit_id == unit.id)).rowcount
        uow.commit()
    return bool(count)


def _unit(code: str) -> OrgUnit:
    unit = db.session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None:
        raise NotFound(f"org unit {code} not found", field="org_unit")
    return unit


def version_for_unit(unit: OrgUnit | None, default_key: str) -> ProcessVersion | None:
    """The version a new case opened at ``unit`` starts on.

    The variant of the most specific unit on the unit's path (itself, its village, town,
    county) wins; a variant whose key has no version is skipped. Without one: the default
    key's latest version.
    """
    if unit is not None:
        rows = db.session.execute(
            select(ProcessVariant, OrgUnit.path).join(OrgUnit, OrgUnit.id == ProcessVariant.org_unit_id)
            .where(ProcessVariant.org_unit_id.in_(unit.ancestor_ids()))
        ).all()
        for variant, _path in sorted(rows, key=lambda row: len(row[1]), reverse=True):
            version = variant.version if variant.version_id else latest_version(variant.key)
            if version is not None:
                return version
    return latest_version(default_key)


# ---------------------------------------------------------------------------------------------
# Migration of running cases

def _case_rows(target: ProcessVersion, case_ids: list[int] | None, source: ProcessVersion | None):
    from app.cases.models import CaseStatus, DisputeCase

    query = select(DisputeCase.id).order_by(DisputeCase.id)
    if case_ids:
        query = query.where(DisputeCase.id.in_(case_ids))
    else:
        query = query.where(DisputeCase.status != CaseStatus.closed, DisputeCase.process_version_id != target.id)
        if source is not None:
            query = query.where(DisputeCase.process_version_id == source.id)
        else:
            # Other versions of the same key only: moving cases into another region's variant
            # is a deliberate choice (name the source version or the cases).
            query = query.where(DisputeCase.process_version_id.in_(
                select(ProcessVersion.id).where(ProcessVersion.key == target.key)))
    return list(db.session.scalars(query))


def migrate_cases(actor: User | None, target: ProcessVersion, case_ids: list[int] | None = None,
                  source: ProcessVersion | None = None, dry_run: bool = True) -> list[dict]:
    """Move running cases to ``target`` (or, with ``dry_run``, say what would happen).

    Without ``case_ids``: every open case on ``source`` (default: on the other versions of the
    target's key). Cases may move between keys that run the same BPMN process (a region's
    variant), never to another process. Each case moves in its own transaction under its row lock; a case the
    target cannot hold (a completed or active step removed) is refused and stays as it is.
    Every move is a case event. Returns one report per case.
    """
    require_role(actor, INTEGRATOR, "migrating cases")
    selected = _case_rows(target, case_ids, source)
    db.session.rollback()  # end the read: each case's transaction starts with its row lock
    return [_migrate_case(actor, case_id, target, dry_run) for case_id in selected]


def _reproject_ready_tasks(case, target_parsed: engine.ParsedProcess) -> None:
    """Ready tasks keep their rows (same engine task); give them the new version's title, form and
    lane. A task whose lane changed goes to the new role's holders (and is released if its holder
    does not hold that role)."""
    from app.cases.models import HumanTask, TaskStatus
    from app.org import services as org
    from app.org.roles import ROLE_TIER, ROLES

    for task in db.session.scalars(select(HumanTask).where(HumanTask.case_id == case.id,
                                                          HumanTask.status == TaskStatus.ready)):
        info = target_parsed.user_tasks.get(task.spec_name)
        if info is None:
            continue
        task.title, task.form_name = info.title, info.form
        if info.lane and info.lane != task.lane:
            role = ROLES.get(info.lane)
            unit = org.unit_for_level(case.org_unit, role.level) if role else case.org_unit
            task.lane, task.tier = info.lane, ROLE_TIER.get(info.lane, task.tier)
            task.org_unit_id, task.org_path = unit.id, unit.path
            if task.assignee is not None and not org.works_lane_at(task.assignee, info.lane, unit.path):
                task.assignee_id, task.claimed_at = None, None


def _migrate_case(actor: User | None, case_id: int, target: ProcessVersion, dry_run: bool) -> dict:
    from app.cases import services as cases
    from app.cases.models import CaseStatus, DisputeCase

    with UnitOfWork() as uow:
        case = db.session.get(DisputeCase, case_id) if dry_run else cases.lock_case(case_id)
        if case is None:
            raise NotFound(f"dispute {case_id} not found")
        current = case.process_version
        report = {"case_id": case.id, "number": case.number, "from": f"{current.key} v{current.version}",
                  "to": f"{target.key} v{target.version}", "dry_run": dry_run, "migrated": False,
                  "ok": False, "refusals": [], "dropped": [], "changes": [], "active": []}
        if case.status == CaseStatus.closed:
            report["refusals"].append("the case is closed; closed cases keep their version")
            return report
        if current.id == target.id:
            report["refusals"].append("the case already runs on this version")
            return report
        if current.top_process_id != target.top_process_id:
            report["refusals"].append(f"the case runs process {current.top_process_id}, the target runs "
                                      f"{target.top_process_id}")
            return report
        state = case.workflow_state.state
        source_parsed, target_parsed = parsed_process(current), parsed_process(target)
        script_engine = cases._script_engine()
        if dry_run:
            plan = engine.plan_migration(state, source_parsed, target_parsed, script_engine)
            report.update(plan.as_dict())
            return report
        try:
            instance, plan = engine.migrate(state, source_parsed, target_parsed, script_engine)
        except engine.MigrationRefused as exc:
            report.update(exc.plan.as_dict())
            return report
        report.update(plan.as_dict())
        case.workflow_state.state = instance.dump()
        case.process_version_id, case.process_version = target.id, target
        cases.change_workflow(case, actor, lambda _instance: None)
        _reproject_ready_tasks(case, target_parsed)
        cases.record_event(case, actor, "process_migrated",
                           f"流程版本由 {report['from']} 迁移至 {report['to']}",
                           data={"from_version_id": current.id, "to_version_id": target.id,
                                 "changes": plan.changes, "dropped": plan.dropped})
        uow.commit()
        report["migrated"] = True
    return report
