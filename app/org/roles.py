"""The roles people hold. A BPMN lane named after a role routes its tasks to that role's holders.

``level`` is where the role is granted: a task in that lane goes to holders at the case's
ancestor unit of that level (grid tasks go to grid workers anywhere in the case's village).
"""
from dataclasses import dataclass

from app.org.models import Level


@dataclass(frozen=True)
class Role:
    code: str
    zh: str
    en: str
    level: Level
    works_tasks: bool = True


ROLES = {
    role.code: role
    for role in [
        Role("grid_worker", "网格员", "Grid worker", Level.grid),
        Role("intake_clerk", "受理员", "Intake clerk", Level.village),
        Role("village_mediator", "村(社)调解员", "Village mediator", Level.village),
        Role("town_dispatcher", "镇街综合信息指挥室", "Town command room", Level.town),
        Role("town_mediator", "镇街调解员", "Town mediator", Level.town),
        Role("county_center", "县社会治理中心", "County governance centre", Level.county),
        Role("county_justice", "县司法局", "County justice bureau", Level.county),
        Role("county_petition", "县信访局", "County petition bureau", Level.county),
        Role("county_leader", "包案领导", "Responsible leader", Level.county),
        Role("court_clerk", "法院诉调对接中心", "Court mediation liaison", Level.county),
        Role("supervisor", "督办员", "Supervisor", Level.town, works_tasks=False),
        Role("policy_editor", "流程编辑", "Policy editor", Level.county, works_tasks=False),
        Role("integrator", "系统集成", "Integrator", Level.county, works_tasks=False),
    ]
}

TASK_ROLES = {code for code, role in ROLES.items() if role.works_tasks}

# The tier a lane's work belongs to, as the statistics count it.
ROLE_TIER = {
    "grid_worker": "village",
    "intake_clerk": "village",
    "village_mediator": "village",
    "town_dispatcher": "town",
    "town_mediator": "town",
    "county_center": "county",
    "county_justice": "county",
    "county_petition": "county",
    "county_leader": "county",
    "court_clerk": "court",
}
