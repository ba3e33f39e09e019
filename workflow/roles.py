"""Business roles an enterprise takes and member roles a person holds inside an enterprise."""

BUSINESS_ROLES: dict[str, str] = {"core": "核心企业", "supplier": "资产方（供应商）", "funder": "资金方"}

MEMBER_ROLES: dict[str, str] = {
    "admin": "管理员",
    "operator": "经办人",
    "approver": "审批人",
    "legal_rep": "法定代表人",
    "agent": "授权代理人",
}
