"""The financing lifecycle: the ONE transition table, and who must act next derived from it.

Use cases, to-do lists, notifications and docs/lifecycle.md all read `FINANCING`; nothing else decides which
action is allowed in which state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from workflow.financing.money import CONVENTION
from workflow.machine import Machine, Transition
from workflow.roles import MEMBER_ROLES

_STAFF = ("operator", "admin")

FINANCING = Machine(
    name="financing",
    state_labels={
        "submitted": "待核心企业领用",
        "claimed": "确权审批中",
        "confirmed": "已确权待分配",
        "rejected": "确权已驳回",
        "withdrawn": "已撤回",
        "allocated": "已分配待认购",
        "subscribed": "已认购待出具合同",
        "contract_issued": "合同已出具待签署",
        "signing": "签署中",
        "signed": "已签署待放款",
        "disbursed": "已放款待确认收款",
        "received": "已收款待到期还款",
        "overdue": "已逾期",
        "repayment_reported": "已登记还款待确认",
        "repaid": "已结清",
    },
    transitions=[
        Transition("submit", "发起融资", (), "submitted", "supplier", _STAFF, body="FinancingInput",
                   guards=("enterprises_approved", "amounts_valid", "invoice_unused", "attachments_owned")),
        Transition("withdraw", "撤回融资申请", ("submitted", "claimed"), "withdrawn", "supplier", _STAFF,
                   body="WithdrawBody", optional=True),
        Transition("claim", "领用", ("submitted",), "claimed", "core", _STAFF),
        Transition("approve", "审批同意", ("claimed",), "confirmed", "core", ("approver",), interim=("claimed",),
                   guards=("distinct_approver", "quorum"), body="ApproveBody"),
        Transition("reject", "驳回确权", ("claimed",), "rejected", "core", ("approver", "operator"),
                   guards=("reason_required",), body="RejectBody", optional=True),
        Transition("allocate", "分配资产", ("confirmed", "allocated"), "allocated", "platform",
                   guards=("approved_funders", "all_declined"), body="AllocateBody"),
        Transition("subscribe", "认购", ("allocated",), "subscribed", "funder", _STAFF,
                   guards=("allocated_funder", "first_wins")),
        Transition("decline", "谢绝认购", ("allocated",), "allocated", "funder", _STAFF,
                   guards=("allocated_funder",), body="DeclineBody", optional=True),
        Transition("issue_contract", "出具合同", ("subscribed",), "contract_issued", "platform",
                   guards=("terms_valid",), body="IssueContractBody"),
        Transition("revise_contract", "修订合同", ("contract_issued", "signing"), "contract_issued", "platform",
                   guards=("terms_valid", "reason_required"), body="ReviseContractBody", optional=True),
        Transition("sign", "签署合同", ("contract_issued", "signing"), "signed", "signatories", ("legal_rep", "agent"),
                   interim=("signing",), guards=("signing_order", "current_contract"), body="SignBody"),
        Transition("disburse", "放款", ("signed",), "disbursed", "funder", _STAFF,
                   guards=("amount_equals_financing", "voucher_owned", "disbursed_before_due"), body="DisburseBody"),
        Transition("confirm_receipt", "确认收款", ("disbursed",), "received", "supplier", _STAFF),
        Transition("report_repayment", "登记还款", ("received", "overdue"), "repayment_reported", "core", _STAFF,
                   guards=("repayment_in_full", "proof_owned"), body="ReportRepaymentBody"),
        Transition("confirm_repayment", "确认还款", ("repayment_reported",), "repaid", "funder", _STAFF),
        Transition("mark_overdue", "标记逾期", ("received",), "overdue", "system", guards=("past_grace",),
                   optional=True),
    ],
)

PARTY_LABELS = {
    "supplier": "资产方（供应商）",
    "core": "核心企业",
    "funder": "资金方",
    "platform": "平台运营",
    "system": "系统定时任务",
    "signatories": "合同各方（依次签署）",
}

# The order of signatures (DESIGN.md §2, step 6): the funder commits its money first, the debtor last.
SIGNING_ORDER = ("funder", "supplier", "core")

GUARDS = {
    "enterprises_approved": "资产方与核心企业均已通过平台审核且具备相应业务角色，且不是同一家企业",
    "amounts_valid": "申请金额不超过票面金额，到期日晚于今天",
    "invoice_unused": "同一资产方的同一张发票不能同时支撑两笔融资（撤回或驳回后释放）",
    "attachments_owned": "附件须为资产方自己上传的发票、贸易合同或其他材料",
    "distinct_approver": "同一审批人只能同意一次",
    "quorum": "同意人数达到审批策略要求（按票面金额分档，领用时确定）后进入“已确权待分配”，否则保持“确权审批中”",
    "reason_required": "必须填写原因",
    "approved_funders": "每个资金方均已通过平台审核且具备资金方角色，且不是本笔融资的资产方或核心企业",
    "all_declined": "再次分配仅在已分配的资金方全部谢绝认购后才允许",
    "allocated_funder": "只有被分配且尚未谢绝的资金方可以认购或谢绝",
    "first_wins": "多个资金方同时认购时只有一家成功，其余提示“该资产已被其他资金方认购”",
    "terms_valid": "融资金额不超过 票面金额×融资比例（向下取整到分），也不超过申请金额；利率为小数形式",
    "signing_order": "按 资金方 → 资产方 → 核心企业 的顺序签署，第三方签署后进入“已签署待放款”",
    "current_contract": "签署的合同版本须为当前版本（修订后须重新查看）",
    "amount_equals_financing": "放款金额须等于合同约定的融资金额",
    "voucher_owned": "放款凭证须为资金方上传的“放款凭证”材料",
    "disbursed_before_due": "放款时间不晚于当前时间、不早于合同签署完成之日、且早于到期日",
    "repayment_in_full": "还款金额不少于应还总额（本金 + 利息 + 手续费），还款时间不早于放款时间、不晚于当前时间",
    "proof_owned": "还款凭证（可选）须为核心企业上传的“还款凭证”材料",
    "past_grace": "到期日加宽限期（默认 3 天）之后仍未还款",
}


class Step(NamedTuple):
    """Who must act next: which party, which enterprise (None for platform/system), which roles, what."""

    party: str
    enterprise_id: int | None
    member_roles: tuple[str, ...]
    action: str

    @property
    def label(self) -> str:
        """The action's Chinese label."""
        return FINANCING.transition(self.action).label


class FinancingState(Protocol):
    """The fields who_acts_next reads (a Financing row has them)."""

    status: str
    supplier_id: int
    core_id: int
    funder_id: int | None
    signature_count: int


def signing_party(financing: FinancingState) -> str | None:
    """Whose signature is due now, or None when the financing is not being signed."""
    if financing.status not in ("contract_issued", "signing") or financing.signature_count >= len(SIGNING_ORDER):
        return None
    return SIGNING_ORDER[financing.signature_count]


def party_enterprise(financing: FinancingState, party: str) -> int | None:
    """The enterprise id playing `party` in this financing (None if not yet known)."""
    return {"supplier": financing.supplier_id, "core": financing.core_id, "funder": financing.funder_id}.get(party)


def who_acts_next(financing: FinancingState, open_funders: Sequence[int] | None = None, *,
                  include_optional: bool = False) -> list[Step]:
    """The awaited steps in the current state, derived from the table.

    `open_funders` are the allocated funders that have not declined; it must be given while the financing
    is "allocated" (the only state whose next actor is not on the financing row itself). With
    `include_optional` the steps nobody waits for (withdraw, reject, decline, revise) are listed too.
    System steps (the scheduler) are never listed.
    """
    if financing.status == "allocated" and open_funders is None:
        raise ValueError("who_acts_next needs open_funders for an allocated financing")
    steps: list[Step] = []
    for t in FINANCING.allowed_from(financing.status):
        if (t.optional and not include_optional) or t.party == "system":
            continue
        if t.party == "platform":
            if t.action == "allocate" and financing.status == "allocated" and open_funders:
                continue  # the funders still deciding act first
            steps.append(Step("platform", None, t.member_roles, t.action))
        elif t.party == "signatories":
            party = signing_party(financing)
            if party is not None:
                steps.append(Step(party, party_enterprise(financing, party), t.member_roles, t.action))
        elif t.party == "funder" and financing.status == "allocated":
            steps.extend(Step("funder", f, t.member_roles, t.action) for f in open_funders or ())
        else:
            steps.append(Step(t.party, party_enterprise(financing, t.party), t.member_roles, t.action))
    return steps


def mermaid_state_diagram() -> list[str]:
    """The table as a Mermaid stateDiagram (one edge per source → target of each action), fenced for Markdown."""
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f'    state "{label}" as {state}' for state, label in FINANCING.state_labels.items()]
    for t in FINANCING.transitions:
        for source in t.sources or ("[*]",):
            lines += [f"    {source} --> {target}: {t.label}" for target in t.targets]
    lines += [f"    {state} --> [*]" for state in FINANCING.terminal_states]
    return [*lines, "```"]


def markdown_table() -> str:
    """docs/lifecycle.md, generated from the table (a test keeps the committed file equal to this)."""
    lines = [
        "# 融资生命周期",
        "",
        "本文件由 `workflow/financing/table.py` 中的状态转换表生成（`python -m workflow.financing.table > docs/lifecycle.md`），",
        "请勿手工修改。",
        "",
        "## 状态",
        "",
        "| 状态 | 含义 | 终态 |",
        "|---|---|---|",
    ]
    terminal = set(FINANCING.terminal_states)
    lines += [f"| `{s}` | {label} | {'是' if s in terminal else ''} |" for s, label in FINANCING.state_labels.items()]
    lines += ["", "## 状态图", "", *mermaid_state_diagram(), ""]
    lines += [
        "## 操作",
        "",
        "| 操作 | action | 从 | 到 | 执行方 | 成员角色 | 请求体 | 校验 | 待办 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in FINANCING.transitions:
        src = ", ".join(f"`{s}`" for s in t.sources) or "（新建）"
        dst = " / ".join(f"`{s}`" for s in t.targets)
        roles = "、".join(MEMBER_ROLES[r] for r in t.member_roles) or ("平台运营人员" if t.party == "platform" else "—")
        guards = ", ".join(f"`{g}`" for g in t.guards) or "—"
        todo = "否" if t.optional or t.party == "system" else "是"
        lines.append(
            f"| {t.label} | `{t.action}` | {src} | {dst} | {PARTY_LABELS[t.party]} | {roles} | {t.body or '—'} | {guards} | {todo} |"
        )
    lines += ["", "## 校验", "", "| 名称 | 规则 |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in GUARDS.items()]
    lines += [
        "",
        "## 约定",
        "",
        f"- 签署顺序：{' → '.join(PARTY_LABELS[p] for p in SIGNING_ORDER)}。",
        "- 默认审批策略（核心企业未配置时）：票面金额不超过 100 万元需 1 名审批人同意，超过 100 万元需 2 名不同的审批人同意。",
        f"- 计息：{CONVENTION}；利息、手续费分别四舍五入到分；金额以分为单位保存，接口中以元为单位的字符串表示（如 \"1234.56\"）。",
        "- 到期日加宽限期后仍未还款，系统定时任务将其标记为逾期。",
        "- “待办”为“否”的操作随时可做，但不会出现在任何人的待办中。",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_table())
