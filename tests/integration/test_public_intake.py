"""一码解纠纷: residents report by QR code, are rate-limited per address, look up their case; staff
print the codes."""
import io
import re
from datetime import timedelta

import segno
from sqlalchemy import func, select

from app.cases.models import DisputeCase, HumanTask
from app.extensions import db
from app.intake.models import PublicReport
from tests.conftest import user

REPORT = {"category": "neighbour", "description": "楼上住户装修噪音持续到深夜，多次沟通无果。",
          "name": "赵丽华", "phone": "138-0000-2222", "location": "东山村三组12号"}


def text(response):
    return response.get_data(as_text=True)


def report(session, unit="QX-FQ-DS", address="203.0.113.7", **overrides):
    return session.post(f"/report/{unit}", data={**REPORT, **overrides},
                        environ_base={"REMOTE_ADDR": address})


def test_a_resident_report_becomes_a_case_for_the_intake_clerk(web):
    resident = web()
    page = resident.get("/report/QX-FQ-DS")
    assert page.status_code == 200 and "东山村" in text(page) and 'name="csrf_token"' in text(page)
    response = report(resident)
    assert response.status_code == 302 and response.location.endswith("/report/QX-FQ-DS/thanks")
    case = db.session.scalar(select(DisputeCase))
    thanks = text(resident.get(response.location))
    assert f'<strong id="case-number">{case.number}</strong>' in thanks
    assert (case.channel, case.status, case.org_unit.code, case.created_by_id) == ("qr_code", "intake", "QX-FQ-DS", None)
    assert (case.category, case.reporter_name, case.reporter_phone, case.location) == (
        "neighbour", "赵丽华", "13800002222", "东山村三组12号")
    assert case.parties == [{"name": "赵丽华", "party_role": "applicant", "phone": "13800002222"}]
    assert case.title.startswith("邻里纠纷：楼上住户装修噪音")
    [task] = db.session.scalars(select(HumanTask).where(HumanTask.case_id == case.id)).all()
    assert (task.spec_name, task.lane) == ("intake_register", "intake_clerk")

    clerk = web("qx_fq_ds_intake_clerk")
    assert case.number in text(clerk.get("/inbox?scope=claimable"))
    form = text(clerk.get(f"/tasks/{task.id}"))
    assert 'value="赵丽华"' in form and 'value="13800002222"' in form, "the registration form starts from the report"
    assert '<option value="qr_code" selected>' in form


def test_a_report_with_mistakes_is_shown_back_with_messages(web):
    response = report(web(), description="  ", phone="打电话给我", category="gossip")
    assert response.status_code == 422
    page = text(response)
    assert '<p class="field-error" id="description-error" role="alert"><span>必填</span></p>' in page
    assert '<p class="field-error" id="phone-error" role="alert"><span>请输入有效的电话号码</span></p>' in page
    assert '<p class="field-error" id="category-error" role="alert"><span>请选择有效选项</span></p>' in page
    assert 'value="赵丽华"' in page and 'value="打电话给我"' in page
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 0


def test_only_village_codes_take_reports(web):
    resident = web()
    assert resident.get("/report/NOPE").status_code == 404
    assert resident.get("/report/QX-FQ").status_code == 404, "a town has no QR intake"
    assert report(resident, unit="QX-FQ-DS-G1").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 0


def test_the_sixth_report_in_an_hour_from_one_address_is_refused(web, fake_clock):
    resident = web()
    for n in range(5):
        fake_clock.advance(minutes=5)
        assert report(resident, description=f"第{n + 1}次反映").status_code == 302
    refused = report(resident, description="第6次反映")
    assert refused.status_code == 429
    assert "同一网络一小时内最多提交 5 次" in text(refused)
    # the oldest of the five was 20 minutes ago: it leaves the window in 40 minutes
    assert 40 * 60 <= int(refused.headers["Retry-After"]) <= 40 * 60 + 1
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 5
    assert report(resident, address="198.51.100.9").status_code == 302, "another address has its own quota"
    fake_clock.advance(minutes=41)
    assert report(resident, description="一小时后").status_code == 302
    assert db.session.scalar(select(func.count()).select_from(DisputeCase)) == 7
    keys = set(db.session.scalars(select(PublicReport.client_key)))
    assert len(keys) == 2 and not any("203.0.113.7" in key for key in keys), "addresses are not stored"


def test_lookup_shows_status_and_dates_only_to_the_reporter(web, fake_clock):
    resident = web()
    report(resident)
    case = db.session.scalar(select(DisputeCase))
    found = resident.post("/report/lookup", data={"number": case.number.lower(), "phone": "13800002222"})
    assert found.status_code == 200
    result = re.search(r'<dl class="facts result" id="lookup-result">(.*?)</dl>', text(found), re.S).group(1)
    assert case.number in result and "待受理登记" in result
    local_opened = (case.opened_at + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert local_opened in result
    whole = text(found)
    for private in ("赵丽华", "装修噪音", "东山村三组", "邻里纠纷", "13800002222"):
        assert private not in whole, private

    wrong_phone = resident.post("/report/lookup", data={"number": case.number, "phone": "13900000000"})
    unknown = resident.post("/report/lookup", data={"number": "JF20269999999", "phone": "13800002222"})
    assert wrong_phone.status_code == unknown.status_code == 404
    assert "未找到：请核对案件编号和联系电话。" in text(wrong_phone) and "lookup-result" not in text(wrong_phone)
    assert text(wrong_phone).replace(case.number, "JF20269999999") == text(unknown), "no hint which part was wrong"


def test_qr_codes_point_at_the_village_report_page(web):
    county = web("qx_county_center")
    png = county.get("/admin/units/QX-FQ-DS/qr.png")
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    expected = io.BytesIO()
    segno.make("http://localhost/report/QX-FQ-DS", error="m").save(expected, kind="png", scale=8, border=2)
    assert png.data == expected.getvalue(), "the code encodes this village's report address"
    png.close()
    svg = county.get("/admin/units/QX-FQ-DS/qr.svg")
    assert svg.headers["Content-Type"].startswith("image/svg+xml") and b"<svg" in svg.data
    svg.close()

    sheet = text(county.get("/admin/qr"))
    villages = re.findall(r'<img src="/admin/units/([A-Z-]+)/qr.svg"', sheet)
    assert villages == ["QX-FQ-DS", "QX-FQ-XH", "QX-FQ-LT", "QX-NH-QY", "QX-NH-SX"]
    assert "http://localhost/report/QX-FQ-DS" in sheet
    town = text(web("qx_fq_supervisor").get("/admin/qr"))
    assert re.findall(r'<img src="/admin/units/([A-Z-]+)/qr.svg"', town) == ["QX-FQ-DS", "QX-FQ-XH", "QX-FQ-LT"]
    assert web("qx_fq_supervisor").get("/admin/units/QX-NH-SX/qr.png").status_code == 404, "another town's village"
    mediator = web("qx_fq_ds_village_mediator")
    assert mediator.get("/admin/qr").status_code == 403
    assert mediator.get("/admin/units/QX-FQ-DS/qr.png").status_code == 403
    assert web().get("/admin/qr").status_code == 302, "login first"
    assert user("qx_county_center") is not None
