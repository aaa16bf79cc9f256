"""Valid form submissions for every user task of the shipped lifecycle, with overrides."""
from copy import deepcopy

TODAY = "2026-11-02"

INTAKE = {
    "title": "东山村王某与李某宅基地边界纠纷",
    "category": "housing_homestead",
    "description": "双方因宅基地界址发生争执，王某称李某新建围墙越界约半米。",
    "channel": "walk_in",
    "source_type": "application",
    "risk_level": "low",
    "people_involved": 2,
    "parties": [
        {"name": "王建国", "party_role": "applicant", "phone": "13800001111"},
        {"name": "李秀英", "party_role": "respondent", "phone": "13900002222"},
    ],
    "location": "东山村三组",
    "accepted": True,
}

MEDIATE_SUCCESS = {
    "mediation_date": TODAY,
    "process_notes": "组织双方现场测量，释法说理，双方同意按原界址重新砌墙。",
    "mediation_result": "success",
    "agreement_summary": "李某于十五日内拆除越界部分围墙，王某承担一半费用。",
    "agreement_amount": 1500,
    "wants_judicial_confirmation": False,
}

MEDIATE_FAILED = {
    "mediation_date": TODAY,
    "process_notes": "双方分歧较大，未能达成一致。",
    "mediation_result": "failed",
    "failure_reason": "no_agreement",
}

FORMS = {
    "intake_register": INTAKE,
    "village_mediate": MEDIATE_SUCCESS,
    "town_dispatch": {"platform": "safety_law", "dispatch_action": "joint_mediation", "instructions": "请镇调委会牵头联合调解"},
    "town_mediate": MEDIATE_SUCCESS,
    "county_accept": {"programs": ["mediation"], "is_major": False},
    "consult_justice": {"justice_opinion": "依据《人民调解法》组织调解。"},
    "consult_petition": {"petition_opinion": "无信访记录，建议调解。", "prior_petitions": False},
    "leader_instruction": {"leader_instruction": "请县社会治理中心牵头，七日内化解。"},
    "county_mediate": MEDIATE_SUCCESS,
    "court_premediation": {"premediation_result": "failed", "notes": "调解不成，转立案。"},
    "court_filing": {"court_case_number": "(2026)青民初1234号", "filing_date": TODAY, "procedure": "quick_ruling"},
    "court_ruling": {"ruling_date": TODAY, "ruling_type": "judgment", "ruling_summary": "判决被告拆除越界围墙。"},
    "judicial_confirmation": {"application_date": TODAY, "confirmation_decision": "confirmed", "ruling_number": "(2026)青民特56号"},
    "follow_up_visit": {"visit_date": TODAY, "visit_method": "phone", "agreement_fulfilled": "fully", "satisfaction": "satisfied"},
}

FAILED = {"village_mediate": MEDIATE_FAILED, "town_mediate": MEDIATE_FAILED, "county_mediate": MEDIATE_FAILED}


def form_data(spec_name: str, **overrides) -> dict:
    data = deepcopy(FORMS[spec_name])
    data.update(overrides)
    return data


def failed(spec_name: str, **overrides) -> dict:
    data = deepcopy(FAILED[spec_name])
    data.update(overrides)
    return data
