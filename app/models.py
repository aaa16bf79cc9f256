"""Import every model so metadata (Alembic, create_all) sees all tables."""
from app.cases.models import CaseEvent, DisputeCase, HumanTask, Timer, WorkflowState  # noqa: F401
from app.intake.models import PublicReport  # noqa: F401
from app.notifications.models import Notification  # noqa: F401
from app.org.models import ApiToken, OrgUnit, RoleGrant, User  # noqa: F401
from app.org.throttle import LoginFailure  # noqa: F401
from app.processes.models import ProcessDraft, ProcessFile, ProcessVariant, ProcessVersion  # noqa: F401
from app.scheduling.models import CalendarDay, SchedulerLease  # noqa: F401
from app.supervision.models import (
    SavedFilter,  # noqa: F401
    SupervisionOrder,  # noqa: F401
)
