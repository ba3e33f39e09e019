"""Hypothesis state machine over the financing lifecycle, through the real HTTP endpoints.

Random actions (every action of the table that has an endpoint) by random people of the cast on random
financings, with valid-ish bodies; a second rule takes the step the table says is awaited, so runs get deep
into the lifecycle. Invariants: every answer is 2xx or 4xx (never 5xx); a 2xx moves the financing along a table
edge from the state it was in and a 4xx leaves it where it was; no financing is disbursed or repaid twice; at
the end the ledger verifies and holds exactly one entry per accepted transition.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from models.financing import Financing
from models.ledger import LedgerEntry
from tests.reliability.harness import (
    LiveApp,
    TokenCast,
    application,
    awaited,
    careful_body,
    login_cast,
    memberships,
    people_for,
    say,
    size,
)
from workflow import ledger
from workflow.financing.bodies import ACTION_BODIES
from workflow.financing.table import FINANCING

SCENARIO = "state-machine"
ACTIONS = sorted(ACTION_BODIES)  # every action with an endpoint (submit creates; mark_overdue is the scheduler's)
# One wrong thing per body, merged over the careful body: each must be refused with a 4xx, never a 5xx.
MISTAKES: dict[str, list[dict[str, Any]]] = {
    "reject": [{"reason": ""}],
    "allocate": [{"funder_ids": [999999]}, {"funder_ids": []}, {"funder_ids": "1"}],
    "issue_contract": [{"financing_amount": "900000.00"}, {"annual_rate": "1.5"}, {"financing_amount": 800000},
                       {"surprise": 1}],
    "revise_contract": [{"reason": ""}, {"financing_amount": "0.001"}],
    "sign": [{"face_ticket": "not-a-ticket"}, {"contract_version": 99}],
    "disburse": [{"amount": "1.00"}, {"voucher_document_id": 999999}, {"disbursed_at": "2020-01-01T00:00:00"}],
    "report_repayment": [{"amount": "1.00"}, {"paid_at": "2999-01-01T00:00:00+08:00"}],
    "withdraw": [{"reason": "长" * 501}],
}


class Lifecycle(RuleBasedStateMachine):
    """One Hypothesis example: a few financings pushed around by the cast."""

    live: LiveApp
    people: TokenCast
    roles: dict[str, dict[int, set[str]]]  # person → enterprise id → member roles
    tally: Counter  # (action, status) over all examples

    financings = Bundle("financings")

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[int, str] = {}  # financing id → the state we believe it is in
        self.accepted: Counter = Counter()  # financing id → accepted transitions (submit included)

    # ---- rules ---------------------------------------------------------------------------------------

    @initialize(target=financings)
    def first(self) -> int:
        """Every example starts with one submitted financing."""
        return self._submit()

    @rule(target=financings)
    def submit(self) -> int:
        """The supplier's operator applies for another financing."""
        return self._submit()

    @rule(fid=financings, action=st.sampled_from(ACTIONS), who=st.sampled_from(sorted(
        ["supplier_admin", "supplier_op", "supplier_rep", "core_op", "core_approver", "core_approver2", "core_rep",
         "funder_op", "funder_rep", "funder2_op", "platform", "foreign_admin", "nobody"])), data=st.data())
    def anyone_tries(self, fid: int, action: str, who: str, data: st.DataObject) -> None:
        """Anyone tries any action."""
        self._act(fid, action, who, data)

    @rule(fid=financings, count=st.integers(1, 6), data=st.data())
    def awaited_steps(self, fid: int, count: int, data: st.DataObject) -> None:
        """Someone the table awaits takes the awaited step, a few times in a row (bodies may still be wrong)."""
        for _ in range(count):
            steps = self.live.run(awaited(fid))
            if not steps:
                return  # a final state: nobody is awaited
            step = data.draw(st.sampled_from(steps))
            candidates = people_for(self.roles, step)
            if candidates:
                self._act(fid, step.action, data.draw(st.sampled_from(candidates)), data)

    # ---- invariants ----------------------------------------------------------------------------------

    @invariant()
    def money_moves_at_most_once(self) -> None:
        """No financing has two disbursements or two repayments, in the ledger or anywhere else."""
        if not self.expected:
            return
        counts = self.live.run(_money_entries(list(self.expected)))
        assert all(n <= 1 for n in counts.values()), counts

    def teardown(self) -> None:
        """The chain verifies and holds exactly the accepted transitions of each financing."""
        if not self.expected:
            return
        result = self.live.run(ledger.verify())
        assert result.ok, result
        entries = self.live.run(_entries_per_financing(list(self.expected)))
        assert entries == {fid: self.accepted[fid] for fid in self.expected}
        states = self.live.run(_states(list(self.expected)))
        assert states == self.expected

    # ---- helpers -------------------------------------------------------------------------------------

    def _submit(self) -> int:
        resp = self.live.call("POST", "/api/v1/financings", self.people.tokens["supplier_op"],
                              json=application(self.people))
        self.tally["submit", resp.status_code] += 1
        assert resp.status_code == 201, resp.text
        fid = resp.json()["id"]
        self.expected[fid], self.accepted[fid] = "submitted", 1
        return fid

    def _act(self, fid: int, action: str, who: str, data: st.DataObject) -> None:
        before = self.expected[fid]
        body = self._body(fid, action, who, data)
        resp = self.live.call("POST", f"/api/v1/financings/{fid}/actions/{action}", self.people.tokens[who],
                              json=body)
        self.tally[action, resp.status_code] += 1
        assert resp.status_code < 500, f"{who} {action} on {before}: {resp.status_code} {resp.text}"
        if resp.status_code < 300:
            after = resp.json()["status"]
            t = FINANCING.transition(action)
            assert before in t.sources and after in t.targets, f"{action}: {before} → {after} is not in the table"
            self.expected[fid] = after
            self.accepted[fid] += 1
        else:
            assert 400 <= resp.status_code < 500, resp.text
            error = resp.json()["error"]
            assert error["code"] and error["message"], error
            assert self.live.run(_states([fid])) == {fid: before}, f"refused {action} still moved the financing"

    def _body(self, fid: int, action: str, who: str, data: st.DataObject) -> dict[str, Any] | None:
        """Mostly what a careful client sends; sometimes a body with one thing wrong."""
        body = careful_body(self.people, fid, action, who)
        wrong = MISTAKES.get(action, [])
        if body is None or not wrong or data.draw(st.integers(0, 2)) > 0:
            return body
        return body | data.draw(st.sampled_from(wrong))


async def _money_entries(fids: list[int]) -> Counter:
    rows = await LedgerEntry.filter(subject__in=[f"financing:{i}" for i in fids],
                                    action__in=["disburse", "confirm_repayment"]).values_list("subject", "action")
    return Counter(rows)


async def _entries_per_financing(fids: list[int]) -> dict[int, int]:
    rows = await LedgerEntry.filter(subject__in=[f"financing:{i}" for i in fids]).values_list("subject", flat=True)
    counted = Counter(int(s.split(":")[1]) for s in rows)
    return {fid: counted[fid] for fid in fids}


async def _states(fids: list[int]) -> dict[int, str]:
    return dict(await Financing.filter(id__in=fids).values_list("id", "status"))


def test_random_actors_keep_the_lifecycle_on_the_table(live: LiveApp) -> None:
    people = login_cast(live)
    Lifecycle.live, Lifecycle.people, Lifecycle.tally = live, people, Counter()
    Lifecycle.roles = live.run(memberships(people))
    examples, steps = size(6, 100), size(40, 100)
    say(SCENARIO, f"tried: {examples} examples × up to {steps} steps of random actions by 13 people "
                  f"(plus the awaited step), through POST /api/v1/financings/{{id}}/actions/{{action}}")
    run_state_machine_as_test(Lifecycle, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
    tally = Lifecycle.tally
    accepted = sum(n for (_, code), n in tally.items() if code < 300)
    refused = Counter()
    for (_, code), n in tally.items():
        if code >= 300:
            refused[code] += n
    reached = live.run(_reached())
    say(SCENARIO, f"held: {sum(tally.values())} calls, {accepted} accepted along table edges, refused "
                  f"{dict(sorted(refused.items()))} (all 4xx, state unchanged), 0 server errors; "
                  f"states reached {sorted(reached)}; no double disbursement/repayment; ledger verifies")
    assert accepted > 0 and refused
    assert all(400 <= code < 500 for code in refused)


async def _reached() -> set[str]:
    return set(await Financing.all().values_list("status", flat=True))

