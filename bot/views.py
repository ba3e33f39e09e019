"""Read-only answers in chat: 我的融资, 查询 <编号>, 待办 (rendered from the same queries the API uses)."""

from __future__ import annotations

from urllib.parse import urlencode

from models.financing import Financing
from models.people import User
from workflow.errors import DomainError
from workflow.financing import queries
from workflow.financing.money import format_yuan
from workflow.financing.table import FINANCING, PARTY_LABELS
from workflow.financing.transition import CHINA_TZ

LIST_LIMIT = 10
TIMELINE_LIMIT = 12


def yuan(fen: int) -> str:
    """Fen as "500,000.00 元" for people."""
    whole, _, cents = format_yuan(fen).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents} 元"


def page_path(financing_id: int, action: str | None = None) -> str:
    """The mini-program page of a financing (with the action to take there, if any)."""
    params = {"id": financing_id} | ({"action": action} if action else {})
    return f"pages/financing/detail?{urlencode(params)}"


def miniapp_link(app_id: str, path: str, text: str) -> str:
    """A text link that opens a mini-program page (文本消息内的小程序文字链, data-miniprogram-*)."""
    if not app_id:
        return f"{text}：小程序页面 {path}"
    return f'<a data-miniprogram-appid="{app_id}" data-miniprogram-path="{path}">{text}</a>'


async def my_financings(user: User) -> str:
    """The newest financings the person may see."""
    page = await queries.list_financings(user, limit=LIST_LIMIT)
    if not page.items:
        return "您还没有可查看的融资。回复“发起融资”开始申请。"
    await Financing.fetch_for_list(page.items, "supplier", "core")
    lines = [f"最近的融资（共显示 {len(page.items)} 笔）："]
    for f in page.items:
        lines.append(f"#{f.id} {FINANCING.state_labels[f.status]}\n  {f.supplier.name} → {f.core.name}\n"
                     f"  票面 {yuan(f.face_amount)}，申请 {yuan(f.requested_amount)}")
    if page.next_cursor:
        lines.append("更早的融资请在小程序中查看。")
    lines.append("回复“查询 编号”查看详情，例如：查询 " + str(page.items[0].id))
    return "\n".join(lines)


async def financing_detail(user: User, financing_id: int, miniapp_app_id: str) -> str:
    """Status, amounts, who acts next and the timeline of one financing (or why it cannot be shown)."""
    try:
        d = await queries.detail(user, financing_id)
    except DomainError as exc:
        return exc.message
    f = d.financing
    await f.fetch_related("supplier", "core", "funder")
    lines = [f"融资 #{f.id}", f"状态：{d.state_label}", f"资产方：{f.supplier.name}", f"核心企业：{f.core.name}"]
    if f.funder is not None:
        lines.append(f"资金方：{f.funder.name}")
    lines += [f"发票号码：{f.invoice_no}", f"贸易合同编号：{f.contract_no}", f"票面金额：{yuan(f.face_amount)}",
              f"申请融资金额：{yuan(f.requested_amount)}"]
    if f.financing_amount is not None:
        lines.append(f"合同融资金额：{yuan(f.financing_amount)}")
    if f.disbursed_amount is not None:
        lines.append(f"已放款：{yuan(f.disbursed_amount)}")
    lines.append(f"到期日：{f.due_date.isoformat()}")
    if d.waiting_for:
        lines.append("下一步：" + "；".join(f"{PARTY_LABELS[s.party]}{s.label}" for s in d.waiting_for))
    mine = d.next_actions
    if mine:
        labels = "、".join(a.label for a in mine)
        lines.append(f"您可以：{labels}（{miniapp_link(miniapp_app_id, page_path(f.id, mine[0].action), '在小程序中办理')}）")
    entries = await queries.timeline(f)
    if entries:
        lines.append("进度：")
        shown = entries[-TIMELINE_LIMIT:]
        if len(entries) > len(shown):
            lines.append(f"  ……（更早的 {len(entries) - len(shown)} 条请在小程序中查看）")
        for e in shown:
            to = f" → {FINANCING.state_labels.get(e.to_state, e.to_state)}" if e.to_state else ""
            lines.append(f"  {e.at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} {e.label}{to}")
    return "\n".join(lines)


async def my_todos(user: User, miniapp_app_id: str) -> str:
    """What waits for the person, each with a link to the mini-program page where it is done."""
    items = await queries.todos(user)
    if not items:
        return "您目前没有待办事项。"
    lines = [f"您有 {len(items)} 项待办："]
    for t in items[:LIST_LIMIT]:
        link = miniapp_link(miniapp_app_id, page_path(t.financing.id, t.action), "去办理")
        lines.append(f"#{t.financing.id} {t.label}（{t.party_label}，{FINANCING.state_labels[t.financing.status]}）{link}")
    if len(items) > LIST_LIMIT:
        lines.append(f"另有 {len(items) - LIST_LIMIT} 项，请在小程序中查看。")
    return "\n".join(lines)
