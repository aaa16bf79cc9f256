"""Modeler, form editor, versions and drafts pages (thin: read the request, call one service)."""
from __future__ import annotations

import json
from functools import wraps

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf

from app import engine
from app.errors import Forbidden, InvalidInput, NotFound
from app.org import services as org
from app.org.roles import ROLES, TASK_ROLES
from app.processes import services
from app.web.mediator.forms import render_form
from app.web.modeler import bp, may_author

NEW_FORM = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "新表单",
    "type": "object",
    "required": ["notes"],
    "properties": {"notes": {"type": "string", "title": "办理情况", "x-widget": "textarea", "maxLength": 2000}},
    "additionalProperties": False,
}


def _user():
    return current_user._get_current_object()


def authoring(view):
    """Logged in with the policy_editor or integrator role; 403 for everyone else."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not may_author(current_user):
            raise Forbidden("process authoring needs the policy_editor or integrator role")
        return view(*args, **kwargs)

    return wrapper


def _payload() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("send a JSON object", errors={"body": ["not JSON"]})
    return data


def _problems(problems) -> list[dict]:
    return [problem.as_dict() for problem in problems]


def _bpmn_files(bench: services.Workbench) -> list[str]:
    """The BPMN files, the one holding the process that runs first."""
    marker = f'id="{bench.bundle.top_process_id}"'
    return sorted(bench.bundle.bpmn, key=lambda name: (marker not in bench.bundle.bpmn[name], name))


def _role_options() -> list[dict]:
    use_english = str(get_locale()) == "en"
    return [{"code": code, "label": role.en if use_english else role.zh}
            for code, role in ROLES.items() if code in TASK_ROLES]


def _messages() -> dict:
    return {
        "group": _("本平台属性"), "form": _("表单 (formJsonSchemaFilename)"), "noForm": _("（无表单）"),
        "uiSchema": _("界面定义 (formUiSchemaFilename)"), "role": _("角色（泳道名称）"),
        "roleHint": _("泳道名称就是办理该环节的角色代码"), "notARole": _("不是角色"),
        "condition": _("流转条件"), "conditionHint": _("Python 表达式，例如 mediation_result == \"success\""),
        "script": _("脚本"), "error": _("错误"), "warning": _("提示"), "openFile": _("打开该文件"),
        "saved": _("草稿已保存，检查通过"), "savedWithProblems": _("草稿已保存，有 %(n)s 个问题需要修改"),
        "problems": _("有 %(n)s 个问题需要修改"), "valid": _("检查通过"), "unsaved": _("有未保存的修改"),
        "deployed": _("已部署为第 %(version)s 版"), "unchanged": _("内容与第 %(version)s 版相同，未新建版本"),
        "failed": _("操作失败"), "importFailed": _("无法打开流程图"),
        "draftLoaded": _("已打开草稿"), "versionLoaded": _("已打开已部署版本"),
    }


# ---------------------------------------------------------------------------------------------
# Overview

@bp.get("")
@authoring
def index():
    user = _user()
    keys = []
    for key in services.list_keys():
        keys.append({"key": key, "versions": services.list_versions(key), "drafts": services.drafts_of(key)})
    return render_template(
        "modeler/index.html", keys=keys, variants=services.list_variants(), all_versions=services.list_versions(),
        units=org.list_units(),
        may_edit=services.has_role(user, services.POLICY_EDITOR),
        may_deploy=services.has_role(user, services.INTEGRATOR),
    )


@bp.post("/variants/new")
@authoring
def new_variant():
    source = services.get_version(request.form.get("version_id", type=int) or 0)
    key = (request.form.get("key") or "").strip()
    try:
        services.start_variant(_user(), source, key)
    except InvalidInput as exc:
        flash(_("无法新建变体：%(reason)s", reason="; ".join(m for ms in exc.errors.values() for m in ms)), "error")
        return redirect(url_for("modeler.index"))
    flash(_("已从 %(source)s 第 %(n)s 版新建变体 %(key)s 的草稿", source=source.key, n=source.version, key=key), "success")
    return redirect(url_for("modeler.edit", key=key))


@bp.post("/<key>/discard")
@authoring
def discard(key):
    count = services.discard_drafts(_user(), key, request.form.get("file") or None)
    flash(_("已放弃 %(n)s 个草稿文件", n=count), "success")
    return redirect(url_for("modeler.index"))


@bp.get("/<key>/diff")
@authoring
def diff(key):
    old = services.get_version(request.args.get("from", type=int) or 0)
    new = services.get_version(request.args.get("to", type=int) or 0)
    return render_template("modeler/diff.html", key=key, old=old, new=new, changes=services.diff_versions(old, new))


# ---------------------------------------------------------------------------------------------
# The modeler

@bp.get("/<key>")
@authoring
def edit(key):
    user = _user()
    version_id = request.args.get("version", type=int)
    bench = services.workbench(key, version_id, with_drafts=version_id is None)
    files = _bpmn_files(bench)
    if not files:
        raise NotFound(f"{key} has no BPMN file")
    file_name = request.args.get("file") or files[0]
    if file_name not in bench.bundle.bpmn:
        raise NotFound(f"{key} has no file {file_name}")
    query = {"version": version_id} if version_id else {}
    config = {
        "key": key, "file": file_name, "xml": bench.bundle.bpmn[file_name],
        "isDraft": file_name in bench.drafts, "baseVersionId": bench.base.id if bench.base else None,
        "csrf": generate_csrf(),
        "saveUrl": url_for("modeler.save_file", key=key, file_name=file_name),
        "checkUrl": url_for("modeler.check", key=key),
        "deployUrl": url_for("modeler.deploy", key=key),
        "fileUrls": {name: url_for("modeler.edit", key=key, file=name, **query) for name in files}
        | {name: url_for("modeler.form_editor", key=key, name=name, **query) for name in bench.bundle.forms},
        "roles": _role_options(), "forms": sorted(n for n in bench.bundle.forms if n.endswith(".schema.json"))
        or sorted(bench.bundle.forms),
        "problems": _problems(services.check_bundle(bench.bundle)),
        "messages": _messages(),
    }
    return render_template(
        "modeler/edit.html", key=key, bench=bench, files=files, file_name=file_name, query=query,
        config=config, version_id=version_id,
        may_edit=services.has_role(user, services.POLICY_EDITOR),
        may_deploy=services.has_role(user, services.INTEGRATOR),
    )


@bp.post("/<key>/files/<file_name>")
@authoring
def save_file(key, file_name):
    """Save one file (BPMN from the modeler, or JSON) as a draft; answer with the bundle's problems."""
    data = _payload()
    draft, problems = services.save_draft(_user(), key, file_name, data.get("content"), data.get("base_version_id"))
    return jsonify({"saved": True, "file": draft.file_name, "updated_at": draft.updated_at.isoformat(),
                    "problems": _problems(problems)})


@bp.post("/<key>/check")
@authoring
def check(key):
    """The problems the bundle would have with this (unsaved) file; nothing is stored."""
    data = _payload()
    overrides = {data.get("file"): data.get("content")} if data.get("file") else {}
    return jsonify({"problems": _problems(services.check_workbench(key, overrides))})


@bp.post("/<key>/deploy")
@authoring
def deploy(key):
    """Deploy the saved drafts over their base as the next version (integrator)."""
    data = request.get_json(silent=True) or {}
    version, created, warnings = services.deploy_drafts(_user(), key, (data.get("note") or "").strip() or None)
    return jsonify({"id": version.id, "key": version.key, "version": version.version, "created": created,
                    "warnings": _problems(warnings)}), 201 if created else 200


# ---------------------------------------------------------------------------------------------
# The form editor

def _preview(text: str, name: str) -> tuple[str | None, str | None]:
    """The form as mediators will see it (the same renderer), and what is wrong with it."""
    problem = engine.form_problem(text, name)
    try:
        schema = json.loads(text)
    except ValueError:
        return None, problem
    if not isinstance(schema, dict):
        return None, problem
    try:
        return str(render_form(schema)), problem
    except (ValueError, TypeError, AttributeError) as exc:
        return None, problem or _("预览失败：%(reason)s", reason=str(exc))


@bp.route("/<key>/forms/<name>", methods=["GET", "POST"])
@authoring
def form_editor(key, name):
    if not services.FILE_NAME.match(name) or not name.endswith(".json"):
        raise NotFound(f"not a form file name: {name}")
    version_id = request.args.get("version", type=int)
    bench = services.workbench(key, version_id, with_drafts=version_id is None)
    if request.method == "POST":
        text = request.form.get("content", "")
        if request.form.get("action") == "save":
            _draft, problems = services.save_draft(_user(), key, name, text,
                                                   bench.base.id if bench.base else None)
            errors = [p for p in problems if p.severity == "error"]
            flash(_("草稿已保存") if not errors else _("草稿已保存，有 %(n)s 个问题需要修改", n=len(errors)),
                  "success" if not errors else "error")
            return redirect(url_for("modeler.form_editor", key=key, name=name))
    elif name in bench.bundle.forms:
        text = bench.bundle.forms[name]
    else:
        text = json.dumps(NEW_FORM, ensure_ascii=False, indent=2)
    html, error = _preview(text, name)
    users = sorted(task for task, form in engine.user_task_forms(bench.bundle.bpmn).items() if form == name)
    config = {"previewUrl": url_for("modeler.preview", name=name), "csrf": generate_csrf()}
    return render_template("modeler/form.html", key=key, name=name, text=text, preview_html=html, error=error,
                           is_draft=name in bench.drafts, users=users, bench=bench,
                           config=config,
                           may_edit=services.has_role(_user(), services.POLICY_EDITOR))


@bp.get("/<key>/forms")
@authoring
def new_form(key):
    """The form editor for a new form file (``?name=...``)."""
    name = (request.args.get("name") or "").strip()
    if not services.FILE_NAME.match(name) or not name.endswith(".json"):
        flash(_("表单文件名只能包含字母、数字、_ . -，并以 .json 结尾"), "error")
        return redirect(url_for("modeler.edit", key=key))
    return redirect(url_for("modeler.form_editor", key=key, name=name))


@bp.post("/forms/preview/<name>")
@authoring
def preview(name):
    """Live preview for the form editor: {html, error}."""
    text = _payload().get("schema")
    if not isinstance(text, str):
        raise InvalidInput("send the schema text", errors={"schema": ["required"]})
    html, error = _preview(text, name)
    return jsonify({"html": html, "error": error})


# ---------------------------------------------------------------------------------------------
# Regions and running cases (integrators): which variant new cases use, and moving open cases

@bp.post("/variants/map")
@authoring
def map_variant():
    unit_code = request.form.get("unit_code") or ""
    key = request.form.get("key") or ""
    version = request.form.get("version", type=int)
    try:
        services.set_variant(_user(), unit_code, key, version, (request.form.get("note") or "").strip() or None)
    except (NotFound, InvalidInput) as exc:
        flash(_("无法设置地区变体：%(reason)s", reason=exc.message), "error")
        return redirect(url_for("modeler.index", _anchor="variants"))
    flash(_("%(unit)s 的新案件将使用 %(key)s", unit=unit_code, key=key), "success")
    return redirect(url_for("modeler.index", _anchor="variants"))


@bp.post("/variants/<unit_code>/clear")
@authoring
def clear_variant(unit_code):
    services.clear_variant(_user(), unit_code)
    flash(_("%(unit)s 的新案件恢复使用默认流程", unit=unit_code), "success")
    return redirect(url_for("modeler.index", _anchor="variants"))


@bp.route("/migrate", methods=["GET", "POST"])
@authoring
def migrate():
    """Pick a target and a source version, read the dry run case by case, then migrate."""
    user = _user()
    target_id = request.values.get("to", type=int)
    source_id = request.values.get("from", type=int)
    target = services.get_version(target_id) if target_id else None
    source = services.get_version(source_id) if source_id else None
    reports, steps = None, None
    if target is not None:
        run = request.method == "POST"
        reports = services.migrate_cases(user, target, None, source, dry_run=not run)
        steps = services.step_changes(source, target) if source else None
        if run:
            moved = sum(1 for report in reports if report["migrated"])
            flash(_("已迁移 %(moved)s 件，%(refused)s 件保持原版本", moved=moved, refused=len(reports) - moved),
                  "success" if moved == len(reports) else "warning")
    return render_template("modeler/migrate.html", versions=services.list_versions(), target=target,
                           source=source, reports=reports, steps=steps, executed=request.method == "POST",
                           may_deploy=services.has_role(user, services.INTEGRATOR))
