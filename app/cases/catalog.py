"""Codes used by cases, with their Chinese and English labels (People's Mediation statistics)."""

CATEGORIES = {
    "marriage_family": ("婚姻家庭", "Marriage & family"),
    "neighbour": ("邻里纠纷", "Neighbours"),
    "housing_homestead": ("房屋宅基地", "Housing & homestead"),
    "contract": ("合同纠纷", "Contracts"),
    "business": ("生产经营", "Business operations"),
    "damages": ("损害赔偿", "Damages"),
    "forest_land": ("山林土地", "Forest & land"),
    "land_requisition": ("征地拆迁", "Land requisition & demolition"),
    "pollution": ("环境污染", "Pollution"),
    "labour": ("劳动争议", "Labour"),
    "consumer": ("消费纠纷", "Consumer"),
    "medical": ("医疗纠纷", "Medical"),
    "traffic": ("道路交通事故", "Traffic accidents"),
    "property_mgmt": ("物业纠纷", "Property management"),
    "village_affairs": ("村务管理", "Village affairs"),
    "other": ("其它", "Other"),
}

CHANNELS = {
    "qr_code": ("扫码上报", "QR code"),
    "hotline_12345": ("12345热线", "12345 hotline"),
    "hotline_12348": ("12348法律服务热线", "12348 legal hotline"),
    "walk_in": ("来访(说事点)", "Walk-in"),
    "grid_report": ("网格员上报", "Grid worker report"),
    "app": ("移动端/微信", "App / WeChat"),
    "referral": ("移送", "Referral"),
}

RISK_LEVELS = {"low": ("低", "Low"), "medium": ("中", "Medium"), "high": ("高", "High")}

TIERS = {
    "village": ("村(社)", "Village"),
    "town": ("镇街", "Town"),
    "county": ("县级", "County"),
    "court": ("法院", "Court"),
}
TIER_ORDER = ["village", "town", "county", "court"]

OUTCOMES = {
    "resolved": ("调解结案", "Resolved"),
    "litigated": ("诉讼结案", "Litigated"),
    "not_accepted": ("不予受理", "Not accepted"),
    "withdrawn": ("撤回", "Withdrawn"),
}

ESCALATION_REASONS = {
    "mediation_failed": ("调解不成", "mediation failed"),
    "time_limit": ("办理时限届满", "time limit reached"),
}
