"""What the people handling a case do besides completing tasks: drafts, comments, attachments,
high-value flags, and the reads the workspace pages need beyond ``queries``.

Each change owns its transaction and appends a ``case_event`` (who, when, what), like the
lifecycle services. Nothing here loads a workflow.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select

from app import clock
from app.cases import queries
from app.cases.models import (
    CaseAttachment,
    CaseComment,
    DisputeCase,
    HumanTask,
    TaskStatus,
    Timer,
    TimerKind,
)
from app.cases.services import _record, get_visible_task
from app.database import UnitOfWork, lock_row
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.extensions import db
from app.org import services as org
from app.org.models import User

COMMENT_MAX_LENGTH = 2000
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
#: The file types a case may hold, recognised by their first bytes (never by the name or the
#: browser's claim): signature → (content type, usual extension).
ATTACHMENT_TYPES = {
    b"%PDF-": ("application/pdf", ".pdf"),
    b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
    b"\xff\xd8\xff": ("image/jpeg", ".jpg"),
}
_CHUNK = 64 * 1024


# ---------------------------------------------------------------------------------------------
# Drafts

def save_draft(actor: User, task_id: int, values: dict) -> HumanTask:
    """Keep unfinished form values on the task; they prefill the form next time.

    Values are stored as entered (not validated: a draft may be incomplete). An unclaimed task
    is claimed by the person saving, so a colleague cannot overwrite the draft by taking it.
    """
    with UnitOfWork() as uow:
        task = get_visible_task(actor, task_id)
        case = lock_row(DisputeCase, task.case_id)
        db.session.refresh(task)
        if task.status != TaskStatus.ready:
            raise Conflict("the task is no longer open", code="not_ready")
        if not org.works_lane_at(actor, task.lane, task.org_path):
            raise Forbidden(f"saving a draft needs the role {task.lane} at this unit")
        if task.assignee_id not in (None, actor.id):
            raise Conflict(f"task is held by {task.assignee.display_name}", code="claimed_by_other")
        if task.assignee_id is None:
            task.assignee_id, task.claimed_at = actor.id, clock.now()
            _record(case, actor, "task_claimed", f"{actor.display_name} 认领「{task.title}」", task_id=task.task_id)
        task.draft = dict(values)
        _record(case, actor, "draft_saved", f"{actor.display_name} 暂存「{task.title}」草稿",
                task_id=task.task_id, data={"fields": sorted(values)})
        uow.commit()
    return task


def next_task_for(actor: User, case_id: int) -> HumanTask | None:
    """The case's first ready task this user may work on now (unclaimed or already theirs)."""
    case = db.session.get(DisputeCase, case_id)
    if case is None:
        return None
    for task in queries.open_tasks(case):
        if task.assignee_id in (None, actor.id) and org.works_lane_at(actor, task.lane, task.org_path):
            return task
    return None


# ---------------------------------------------------------------------------------------------
# Comments

def add_comment(actor: User, case_id: int, body: str) -> CaseComment:
    """Post a note between handlers on a case the actor can see."""
    body = (body or "").strip()
    if not body:
        raise InvalidInput("the comment is empty", errors={"body": ["required"]})
    if len(body) > COMMENT_MAX_LENGTH:
        raise InvalidInput("the comment is too long", errors={"body": ["too_long"]})
    with UnitOfWork() as uow:
        case = queries.get_case(actor, case_id)
        comment = CaseComment(case_id=case.id, author_id=actor.id, body=body, created_at=clock.now())
        db.session.add(comment)
        db.session.flush()
        _record(case, actor, "comment_added", f"{actor.display_name} 发表意见", data={"comment_id": comment.id})
        uow.commit()
    return comment


def comments(case: DisputeCase) -> list[CaseComment]:
    return list(db.session.scalars(
        select(CaseComment).where(CaseComment.case_id == case.id).order_by(CaseComment.created_at, CaseComment.id)))


# ---------------------------------------------------------------------------------------------
# Attachments

def _sniff(head: bytes) -> tuple[str, str] | None:
    for signature, kind in ATTACHMENT_TYPES.items():
        if head.startswith(signature):
            return kind
    return None


def _clean_name(filename: str | None, extension: str) -> str:
    # Keep what the uploader called it (for display and download), minus any directories.
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip().replace("\x00", "")
    name = "".join(ch for ch in name if ch.isprintable())[-200:]
    return name or f"attachment{extension}"


def add_attachment(actor: User, case_id: int, filename: str | None, stream: BinaryIO,
                   directory: str | Path) -> CaseAttachment:
    """Store an uploaded PDF/JPEG/PNG (at most 10 MB) for a case the actor can see.

    The bytes go to ``directory/<sha256>`` (equal files are kept once); the type is taken from
    the file's first bytes. Errors carry a code in ``errors["file"]``: empty, too_large,
    unsupported_type.
    """
    case = queries.get_case(actor, case_id)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                if len(head) < 16:
                    head += chunk[:16]
                size += len(chunk)
                if size > ATTACHMENT_MAX_BYTES:
                    raise InvalidInput("the file is larger than 10 MB", errors={"file": ["too_large"]})
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise InvalidInput("the file is empty", errors={"file": ["empty"]})
        kind = _sniff(head)
        if kind is None:
            raise InvalidInput("only PDF, JPEG and PNG files are accepted", errors={"file": ["unsupported_type"]})
        sha = digest.hexdigest()
        target = directory / sha
        if target.exists():
            os.unlink(temp_name)
        else:
            os.replace(temp_name, target)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    content_type, extension = kind
    with UnitOfWork() as uow:
        attachment = CaseAttachment(
            case_id=case.id, original_name=_clean_name(filename, extension), stored_name=sha,
            content_type=content_type, size=size, sha256=sha, uploaded_by_id=actor.id, uploaded_at=clock.now(),
        )
        db.session.add(attachment)
        db.session.flush()
        _record(case, actor, "attachment_added", f"{actor.display_name} 上传附件「{attachment.original_name}」",
                data={"attachment_id": attachment.id, "name": attachment.original_name, "size": size, "sha256": sha})
        uow.commit()
    return attachment


def attachments(case: DisputeCase) -> list[CaseAttachment]:
    return list(db.session.scalars(
        select(CaseAttachment).where(CaseAttachment.case_id == case.id)
        .order_by(CaseAttachment.uploaded_at, CaseAttachment.id)))


def attachment_file(actor: User, case_id: int, attachment_id: int, directory: str | Path) -> tuple[CaseAttachment, Path]:
    """An attachment of a case the actor can see, with the path of its bytes; else NotFound."""
    case = queries.get_case(actor, case_id)
    attachment = db.session.get(CaseAttachment, attachment_id)
    if attachment is None or attachment.case_id != case.id:
        raise NotFound(f"attachment {attachment_id} not found")
    path = Path(directory) / attachment.stored_name
    if not path.is_file():
        raise NotFound(f"the file of attachment {attachment_id} is missing")
    return attachment, path


# ---------------------------------------------------------------------------------------------
# High-value events (grid worker rewards)

def report_high_value(actor: User, case_id: int) -> DisputeCase:
    """Flag a case the actor reported as a high-value event, for a supervisor to confirm."""
    with UnitOfWork() as uow:
        queries.get_case(actor, case_id)
        case = lock_row(DisputeCase, case_id)
        if not case.high_value_reported:
            case.high_value_reported = True
            _record(case, actor, "high_value_reported", f"{actor.display_name} 上报为高价值事件")
        uow.commit()
    return case


def may_confirm_high_value(actor: User, case: DisputeCase) -> bool:
    return org.supervises(actor, case.org_path)


def confirm_high_value(actor: User, case_id: int) -> DisputeCase:
    """A supervisor over the case's unit confirms a reported high-value event (for the reward)."""
    with UnitOfWork() as uow:
        queries.get_case(actor, case_id)
        case = lock_row(DisputeCase, case_id)
        if not may_confirm_high_value(actor, case):
            raise Forbidden("confirming a high-value event needs the supervisor role over this unit")
        if not case.high_value_reported:
            raise Conflict("the case was not reported as a high-value event", code="not_reported")
        if not case.high_value_confirmed:
            case.high_value_confirmed, case.high_value_confirmed_by_id = True, actor.id
            _record(case, actor, "high_value_confirmed", f"{actor.display_name} 确认为高价值事件")
        uow.commit()
    return case


# ---------------------------------------------------------------------------------------------
# Reads for the inbox

def fired_reminders(case_ids: list[int]) -> dict[int, datetime]:
    """When each case's latest reminder (催办) fired, for the cases that had one; one query."""
    if not case_ids:
        return {}
    rows = db.session.execute(
        select(Timer.case_id, func.max(Timer.fired_at))
        .where(Timer.case_id.in_(case_ids), Timer.kind == TimerKind.reminder, Timer.status == "fired")
        .group_by(Timer.case_id))
    return {case_id: fired_at for case_id, fired_at in rows if fired_at is not None}


def load_cases(case_ids: list[int]) -> dict[int, DisputeCase]:
    """Load many cases at once (so ``task.case`` on a page of tasks costs one query, not one each)."""
    if not case_ids:
        return {}
    return {case.id: case for case in db.session.scalars(select(DisputeCase).where(DisputeCase.id.in_(case_ids)))}
