"""发起融资 in chat: one explicit state per question, then the same `submit` use case the API calls.

States: fin.supplier (only when the person works for several suppliers) → fin.core → fin.invoice_no →
fin.contract_no → fin.face_amount → fin.due_date → fin.requested_amount → fin.photos → fin.review.
Every answer is checked with FinancingInput's own field rules (bot.fields); rules spanning fields (requested ≤ face,
due date after today, invoice unused) are the use case's, and its refusal sends the person back to the
question concerned, then straight back to the review.
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import Any

from pydantic import ValidationError

from bot import photos
from bot.context import Bot
from bot.fields import FIELD_STEPS, sentence, title, validate_field
from bot.state import Busy
from bot.turn import Outcome, Turn
from bot.views import miniapp_link, page_path, yuan
from echain.validation import describe
from models.documents import Document
from models.enterprises import Enterprise
from models.people import Membership, User
from workflow.documents import DOCUMENT_KINDS
from workflow.errors import DomainError
from workflow.financing import service
from workflow.financing.bodies import FinancingInput
from workflow.financing.money import format_yuan
from workflow.financing.table import FINANCING
from workflow.roles import MEMBER_ROLES

SUPPLIER, CORE, PHOTOS, REVIEW = "fin.supplier", "fin.core", "fin.photos", "fin.review"
MAX_CHOICES = 20
# As many photos as a financing takes attachments (FinancingInput.attachment_ids' max_length).
MAX_PHOTOS = next(m.max_length for m in FinancingInput.model_fields["attachment_ids"].metadata
                  if hasattr(m, "max_length"))
PHOTO_WAIT = 120  # a photo still "on its way" after this long is counted as lost (e.g. the app restarted)
DONE_WORDS = {"完成", "好了", "上传完成", "完毕", "done"}
CONFIRM_WORDS = {"确认", "确认提交", "提交", "是"}
_BY_STATE = {s.state: s for s in FIELD_STEPS}
STATES = (SUPPLIER, CORE, *_BY_STATE, PHOTOS, REVIEW)
# The review's numbered items → the state that asks for them again.
_EDIT = {"1": CORE, **{str(i + 2): s.state for i, s in enumerate(FIELD_STEPS)}, str(len(FIELD_STEPS) + 2): PHOTOS}
# Refusals of the submit use case → the question to ask again (codes from workflow.financing.submission).
_RETRY_AT = {
    "requested_exceeds_face": "fin.requested_amount",
    "due_date_past": "fin.due_date",
    "invoice_in_use": "fin.invoice_no",
    "core_not_eligible": CORE,
    "same_enterprise": CORE,
    "attachment_not_owned": PHOTOS,
    "attachment_kind": PHOTOS,
}


def in_flow(state: str) -> bool:
    """True while the person is somewhere in 发起融资."""
    return state in STATES


def _choice_list(choices: list[list[Any]]) -> str:
    return "\n".join(f"{i}. {name}" for i, (_, name) in enumerate(choices, 1))


def _pick(choices: list[list[Any]], text: str) -> list[Any] | None:
    return choices[int(text) - 1] if text.isdigit() and 1 <= int(text) <= len(choices) else None


async def _supplier_choices(user: User) -> list[list[Any]]:
    """The approved supplier enterprises where the person may submit (roles read from the transition table)."""
    roles = set(FINANCING.transition("submit").member_roles)
    rows = await Membership.filter(user_id=user.id).prefetch_related("enterprise").order_by("enterprise_id")
    return [[m.enterprise.id, m.enterprise.name] for m in rows
            if m.enterprise.is_supplier and m.enterprise.status == "approved" and roles & set(m.roles or [])]


async def _core_choices(supplier_id: int, search: str = "") -> list[list[Any]]:
    """Approved core enterprises (the counterparties a receivable may be owed by), optionally by name."""
    query = Enterprise.filter(status="approved", is_core=True).exclude(id=supplier_id)
    if search:
        query = query.filter(name__icontains=search)
    return [[e.id, e.name] for e in await query.order_by("name", "id").limit(MAX_CHOICES)]


def prompt(conv_state: str, data: dict[str, Any]) -> str:
    """The question open in `conv_state` (for reminders and after each answer)."""
    if conv_state == SUPPLIER:
        return "您在多家资产方企业任职，请选择以哪家企业发起融资（回复序号）：\n" + _choice_list(data["supplier_choices"])
    if conv_state == CORE:
        more = "\n列表较长时，可回复企业名称中的关键词筛选。" if len(data["core_choices"]) >= MAX_CHOICES else ""
        return "请选择应收账款的付款方（核心企业），回复序号：\n" + _choice_list(data["core_choices"]) + more
    if conv_state in _BY_STATE:
        return _BY_STATE[conv_state].prompt
    if conv_state == PHOTOS:
        got = len(data.get("photos", []))
        return (f"请发送材料照片（第一张为发票，其余为合同等其他材料，最多 {MAX_PHOTOS} 张）。"
                f"已收到 {got} 张；全部发送后回复“完成”。")
    if conv_state == REVIEW:
        return summary(data)
    return ""


def summary(data: dict[str, Any]) -> str:
    """The review of everything entered, with how to change an item."""
    n = len(data.get("photos", []))
    items = [
        f"资产方：{data['supplier_name']}",
        f"1. 核心企业：{data['core_name']}",
        *(f"{i + 2}. {title(s.name)}：{_shown(s.name, data[s.name])}" for i, s in enumerate(FIELD_STEPS)),
        f"{len(FIELD_STEPS) + 2}. 材料照片：{n} 张",
    ]
    return ("请核对融资申请：\n" + "\n".join(items) +
            "\n回复“确认”提交；回复序号修改对应项；回复“取消”放弃。")


def _shown(name: str, value: Any) -> str:
    return yuan(value) if name.endswith("_amount") else str(value)


async def start(turn: Turn) -> str:
    """Begin 发起融资 (from any state: an unfinished application is dropped)."""
    assert turn.user is not None
    conv = turn.conv
    conv.reset()
    suppliers = await _supplier_choices(turn.user)
    if not suppliers:
        roles = "或".join(MEMBER_ROLES[r] for r in FINANCING.transition("submit").member_roles)
        return (f"发起融资需要您是已通过平台审核的资产方（供应商）企业的{roles}。"
                "请先在小程序中完成企业认证，或请企业管理员为您分配角色。")
    conv.go(SUPPLIER, flow=secrets.token_hex(6), photos=[], photo_seq=0, photos_failed=0, supplier_choices=suppliers)
    if len(suppliers) == 1:
        return await _choose_supplier(turn, suppliers[0])
    return prompt(SUPPLIER, conv.data)


async def _choose_supplier(turn: Turn, choice: list[Any]) -> str:
    conv = turn.conv
    conv.data.update(supplier_id=choice[0], supplier_name=choice[1])
    return await _enter_core(turn, f"将以“{choice[1]}”的名义发起融资。\n")


async def _enter_core(turn: Turn, lead: str = "", search: str = "") -> str:
    conv = turn.conv
    cores = await _core_choices(conv.data["supplier_id"], search)
    if not cores and not search:
        conv.reset()
        return "目前平台上还没有已通过审核的核心企业，暂时无法发起融资。"
    if not cores:
        return f"没有名称包含“{search}”的核心企业，请回复列表中的序号：\n" + _choice_list(conv.data["core_choices"])
    conv.go(CORE, core_choices=cores)
    return lead + prompt(CORE, conv.data)


def _advance(turn: Turn, after: str, lead: str = "") -> str:
    """Go to the question after `after` (or back to the review when correcting)."""
    conv = turn.conv
    order = [CORE, *(s.state for s in FIELD_STEPS), PHOTOS, REVIEW]
    nxt = REVIEW if conv.data.get("editing") else order[order.index(after) + 1]
    if nxt == REVIEW:
        conv.data.pop("editing", None)
    conv.go(nxt)
    return lead + prompt(nxt, conv.data)


async def on_text(turn: Turn, text: str) -> str:
    """An answer typed in one of the flow's states."""
    conv = turn.conv
    state = conv.state
    if state == SUPPLIER:
        choice = _pick(conv.data["supplier_choices"], text)
        return await _choose_supplier(turn, choice) if choice else "请回复列表中的序号。\n" + prompt(SUPPLIER, conv.data)
    if state == CORE:
        choice = _pick(conv.data["core_choices"], text)
        if choice is None:
            if text.isdigit():
                return f"请回复 1 到 {len(conv.data['core_choices'])} 之间的序号。"
            return await _enter_core(turn, search=text[:30])
        conv.data.update(core_id=choice[0], core_name=choice[1])
        return _advance(turn, CORE, f"核心企业：{choice[1]}\n")
    if state in _BY_STATE:
        step = _BY_STATE[state]
        value, error = validate_field(step.name, step.normalise(text))
        if error:
            return f"{sentence(error)}\n{step.prompt}"
        conv.data[step.name] = value.isoformat() if step.name == "due_date" else value
        return _advance(turn, state)
    if state == PHOTOS:
        return _photos_done(turn) if text.lower() in DONE_WORDS else prompt(PHOTOS, conv.data)
    if state == REVIEW:
        if text in CONFIRM_WORDS:
            return await _submit(turn)
        if text in _EDIT:
            return _edit(turn, _EDIT[text])
        return "请回复“确认”提交，回复序号修改对应项，或回复“取消”放弃。"
    return ""


def _photos_done(turn: Turn) -> str:
    data = turn.conv.data
    pending = data["photo_seq"] - len(data["photos"]) - data["photos_failed"]
    if pending > 0 and turn.bot.clock() - data.get("photo_at", 0) < PHOTO_WAIT:
        return f"还有 {pending} 张照片正在接收，请稍候几秒再回复“完成”。"
    if pending > 0:
        data["photos_failed"] += pending
    if not data["photos"]:
        return "请至少发送一张材料照片（第一张为发票），再回复“完成”。"
    return _advance(turn, PHOTOS)


def _edit(turn: Turn, state: str) -> str:
    conv = turn.conv
    if state == PHOTOS:
        conv.data.update(photos=[], photo_seq=0, photos_failed=0)
    conv.go(state, editing=True)
    return prompt(state, conv.data)


async def _submit(turn: Turn) -> str:
    assert turn.user is not None
    data = turn.conv.data
    body = {
        "supplier_id": data["supplier_id"], "core_id": data["core_id"], "invoice_no": data["invoice_no"],
        "contract_no": data["contract_no"], "face_amount": format_yuan(data["face_amount"]),
        "requested_amount": format_yuan(data["requested_amount"]), "due_date": data["due_date"],
        "attachment_ids": [doc for _, doc in sorted(data["photos"])],
    }
    try:
        financing = await service.submit(turn.bot.deps, turn.user, FinancingInput.model_validate(body))
    except ValidationError as exc:  # stored answers were validated one by one; only a rule change lands here
        return sentence(describe(exc, FinancingInput)[0]) + "\n" + summary(data)
    except DomainError as exc:
        retry = _RETRY_AT.get(exc.code)
        if retry is None:
            turn.conv.reset()
            return "提交未成功：" + sentence(exc.message)
        return sentence(exc.message) + "请修改：\n" + _edit(turn, retry)
    turn.conv.reset()
    link = miniapp_link(turn.bot.miniapp_app_id, page_path(financing.id), "在小程序中查看")
    return (f"融资申请已提交！\n编号：{financing.id}\n状态：{FINANCING.state_labels[financing.status]}\n"
            f"核心企业领用并确权后会通知您。回复“查询 {financing.id}”可随时查看进度（{link}）。")


def on_photo(turn: Turn, media_id: str) -> Outcome:
    """An image while photos are awaited: answer "success" now, download and store it in the background."""
    conv = turn.conv
    if conv.state == REVIEW:
        return Outcome(f"如需更换材料照片，请回复 {len(FIELD_STEPS) + 2} 重新上传。")
    if conv.state != PHOTOS:
        return Outcome(None)
    if conv.data["photo_seq"] >= MAX_PHOTOS:
        return Outcome(f"最多上传 {MAX_PHOTOS} 张材料照片。请回复“完成”进入确认。")
    conv.data["photo_seq"] += 1
    conv.data["photo_at"] = int(turn.bot.clock())
    seq = conv.data["photo_seq"]
    kind = "invoice" if seq == 1 else "other"  # the first photo is the invoice, the rest other material
    assert turn.user is not None
    job = partial(_receive_photo, turn.bot, turn.user, turn.openid, conv.data["flow"], conv.data["supplier_id"],
                  media_id, seq, kind)
    return Outcome(None, [job])


async def _receive_photo(bot: Bot, user: User, openid: str, flow: str, supplier_id: int, media_id: str, seq: int,
                         kind: str) -> None:
    stored = await photos.fetch_and_store(bot, user, supplier_id, media_id, seq, kind)
    try:
        text = await _attach_photo(bot, openid, flow, seq, kind, stored)
    except Busy:
        text = f"第 {seq} 张照片未能加入本次申请（系统繁忙），请重新发送。"
    await bot.delivery.send(openid, text)


async def _attach_photo(bot: Bot, openid: str, flow: str, seq: int, kind: str, stored: Document | str) -> str:
    async with bot.conversations.session(openid) as conv:
        current = conv.state in (PHOTOS, REVIEW) and conv.data.get("flow") == flow
        if not current:
            text = ("照片已保存到企业材料，但对应的融资申请已提交或已取消，未作为附件。" if isinstance(stored, Document)
                    else f"第 {seq} 张照片未保存：{stored}")
        elif isinstance(stored, Document):
            conv.data["photos"].append([seq, stored.id])
            text = (f"已收到第 {seq} 张材料照片（{DOCUMENT_KINDS[kind]}），共 {len(conv.data['photos'])} 张。"
                    "可继续发送，全部发送后回复“完成”。")
        else:
            conv.data["photos_failed"] += 1
            text = f"第 {seq} 张照片未保存：{stored}"
    return text
