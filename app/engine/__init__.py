"""The only package that imports SpiffWorkflow: parse and validate, cache specs, run steps,
restrict diagram code, read lanes, forms and timers, and move running cases between versions.
Everything else uses this API."""
from functools import lru_cache

from app.engine.errors import DiagramError, EngineError, ScriptFailure, TaskNotFound, TaskNotReady
from app.engine.migration import MigrationPlan, MigrationRefused, compare_versions, migrate, plan_migration
from app.engine.runtime import SERIALIZER_VERSION, Instance, PendingTimer, ReadyTask, Snapshot
from app.engine.sandbox import share_with_workers
from app.engine.scripting import ScriptRejected, check_expression, check_script, create_script_engine
from app.engine.specs import ParsedProcess, UserTaskInfo, parse_bundle, spec_cache
from app.engine.validation import (
    Problem,
    duration_problem,
    errors_only,
    form_problem,
    referenced_forms,
    user_task_forms,
    validate_bundle,
)


@lru_cache(maxsize=4)
def script_engine(time_budget: float = 1.0):
    """A restricted script engine with the default helpers (shared: it keeps no task state)."""
    return create_script_engine(time_budget=time_budget)


__all__ = [
    "DiagramError", "EngineError", "ScriptFailure", "TaskNotFound", "TaskNotReady",
    "SERIALIZER_VERSION", "Instance", "PendingTimer", "ReadyTask", "Snapshot",
    "ParsedProcess", "UserTaskInfo", "parse_bundle", "spec_cache", "script_engine",
    "ScriptRejected", "check_expression", "check_script", "create_script_engine", "share_with_workers",
    "Problem", "duration_problem", "errors_only", "form_problem", "referenced_forms", "user_task_forms", "validate_bundle",
    "MigrationPlan", "MigrationRefused", "compare_versions", "migrate", "plan_migration",
    "start_script_workers",
]


def start_script_workers(script_engine) -> int:
    """Start the worker processes behind ``script_engine`` now; the number running (0 if inline)."""
    pool = getattr(script_engine.environment, "pool", None)
    if pool is None:
        return 0
    pool.start()
    return pool.size
