"""A fictional county for demos and tests: 2 towns, 5 villages, grids, one user per role per unit.

Names are invented; the shape (county > town/street > village/community > grid) follows the
seed reports in shared/seeds.
"""
from sqlalchemy import select

from app.database import UnitOfWork
from app.extensions import db
from app.org import services as org
from app.org.models import Level, OrgUnit, User

DEMO_PASSWORD = "demo12345"

COUNTY = ("QX", "青溪县")
TOWNS = [
    ("QX-FQ", "枫桥镇", [("QX-FQ-DS", "东山村"), ("QX-FQ-XH", "溪湖社区"), ("QX-FQ-LT", "柳塘村")]),
    ("QX-NH", "南湖街道", [("QX-NH-QY", "青园社区"), ("QX-NH-SX", "沙溪村")]),
]
GRIDS_PER_VILLAGE = 2

COUNTY_ROLES = ["county_center", "county_justice", "county_petition", "county_leader", "court_clerk",
                "supervisor", "policy_editor", "integrator"]
TOWN_ROLES = ["town_dispatcher", "town_mediator", "supervisor"]
VILLAGE_ROLES = ["intake_clerk", "village_mediator"]
GRID_ROLES = ["grid_worker"]

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN_NAMES = ["晓明", "建国", "丽华", "志强", "秀英", "海燕", "文斌", "春梅", "国庆", "玉兰", "伟", "静"]


def _username(unit_code: str, role: str) -> str:
    return f"{unit_code.lower().replace('-', '_')}_{role}"


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo county if missing (idempotent); return (username, role, unit) rows."""
    logins: list[tuple[str, str, str]] = []
    with UnitOfWork() as uow:
        existing = db.session.scalar(select(OrgUnit).where(OrgUnit.code == COUNTY[0]))
        if existing is None:
            password_hash = org.hash_password(DEMO_PASSWORD)
            counter = iter(range(10_000))

            def add_people(unit, roles):
                for role in roles:
                    number = next(counter)
                    user = User(
                        username=_username(unit.code, role),
                        display_name=SURNAMES[number % len(SURNAMES)] + GIVEN_NAMES[number % len(GIVEN_NAMES)],
                        password_hash=password_hash,
                    )
                    db.session.add(user)
                    org.grant_role(user, role, unit)

            county = org.create_unit(COUNTY[0], COUNTY[1], Level.county)
            add_people(county, COUNTY_ROLES)
            for town_code, town_name, villages in TOWNS:
                town = org.create_unit(town_code, town_name, Level.town, county)
                add_people(town, TOWN_ROLES)
                for village_code, village_name in villages:
                    village = org.create_unit(village_code, village_name, Level.village, town)
                    add_people(village, VILLAGE_ROLES)
                    for n in range(1, GRIDS_PER_VILLAGE + 1):
                        grid = org.create_unit(f"{village_code}-G{n}", f"{village_name}第{n}网格", Level.grid, village)
                        add_people(grid, GRID_ROLES)
            uow.commit()
    for user in db.session.scalars(select(User).order_by(User.id)):
        for grant in user.grants:
            logins.append((user.username, grant.role, grant.org_unit.name))
    return logins

