"""Notification rules that need no services: who counts as already told, ids, back-off, message fields."""

from datetime import UTC, datetime
from types import SimpleNamespace

from notify.jobs import BACKOFF, backoff, event_job_id, notice_job_id
from notify.messages import notice_fields, page_path
from notify.targets import financing_id, same_party_loop
from workflow.financing.table import Step


def test_same_party_loops_are_the_waits_that_did_not_change_hands():
    approver = Step("core", 7, ("approver",), "approve")
    assert same_party_loop("approve", "claimed", approver)  # below quorum: the other approvers were told at claim
    assert not same_party_loop("claim", "claimed", approver)  # the wait begins now
    other_funder = Step("funder", 9, ("operator", "admin"), "subscribe")
    assert same_party_loop("decline", "allocated", other_funder)
    assert not same_party_loop("allocate", "allocated", other_funder)  # a new allocation round
    assert not same_party_loop("sign", "signing", Step("supplier", 3, ("legal_rep", "agent"), "sign"))
    assert not same_party_loop("revise_contract", "contract_issued", Step("funder", 9, ("legal_rep", "agent"), "sign"))
    assert not same_party_loop("submit", "submitted", Step("core", 7, ("operator", "admin"), "claim"))


def test_ids_are_deterministic_and_subjects_parsed():
    assert event_job_id("financing:42", 3) == "notify:financing:42:3"
    assert notice_job_id("financing:42", 3, 7) == "notify:financing:42:3:7"
    assert financing_id("financing:42") == 42
    assert financing_id("enterprise:42") is None and financing_id("financing:x") is None


def test_back_off_grows_and_stays_inside_wechats_ten_minute_dedup_window():
    assert [backoff(t) for t in (1, 2, 3, 4, 5)] == [5, 15, 45, 120, 120]
    assert sum(BACKOFF) < 600


def test_notice_fields_fit_the_template_limits():
    f = SimpleNamespace(id=42, status="disbursed", financing_amount=32_000_000, requested_amount=40_000_000,
                        updated_at=datetime(2026, 1, 5, 6, 3, tzinfo=UTC))
    fields = notice_fields(f, "confirm_receipt")
    assert fields == {"character_string1": "42", "amount2": "320000.00元", "thing3": "已放款待确认收款",
                      "thing4": "请确认收款", "time5": "2026年01月05日 14:03"}
    assert all(len(v) <= 20 for k, v in fields.items() if k.startswith("thing"))
    assert page_path(42, "approve") == "pages/financing/detail?id=42&action=approve"
