"""Supervisors' saved case-list filters: named, private to their owner.

Saving a name that exists replaces its filters (the list keeps one entry per name).
"""
from __future__ import annotations

from sqlalchemy import select

from app.database import UnitOfWork
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.org.models import User
from app.supervision.models import SavedFilter
from app.supervision.queries import CaseFilters, require_supervisor

NAME_MAX = 80
PER_USER_MAX = 50


def saved_filters(user: User) -> list[SavedFilter]:
    return list(db.session.scalars(
        select(SavedFilter).where(SavedFilter.user_id == user.id).order_by(SavedFilter.name)))


def save_filter(user: User, name: str, args) -> SavedFilter:
    """Keep the filters in ``args`` (query-string arguments) under ``name``."""
    require_supervisor(user)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a saved filter needs a name", errors={"name": ["required"]})
    if len(name) > NAME_MAX:
        raise InvalidInput("the name is too long", errors={"name": [f"at most {NAME_MAX} characters"]})
    query = CaseFilters.parse(args).as_args()
    with UnitOfWork() as uow:
        saved = db.session.scalar(select(SavedFilter).where(SavedFilter.user_id == user.id, SavedFilter.name == name))
        if saved is None:
            count = len(saved_filters(user))
            if count >= PER_USER_MAX:
                raise InvalidInput("too many saved filters", errors={"name": [f"at most {PER_USER_MAX} filters"]})
            saved = SavedFilter(user_id=user.id, name=name, query=query)
            db.session.add(saved)
        else:
            saved.query = query
        uow.commit()
    return saved


def delete_filter(user: User, filter_id: int) -> None:
    """Remove one of the user's saved filters (someone else's answers 404)."""
    with UnitOfWork() as uow:
        saved = db.session.get(SavedFilter, filter_id)
        if saved is None or saved.user_id != user.id:
            raise NotFound(f"saved filter {filter_id} not found")
        db.session.delete(saved)
        uow.commit()
