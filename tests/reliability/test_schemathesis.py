"""Schemathesis against /api/openapi.json: every operation, no server error, every answer as documented.

The real app serves on a real port; the cast is logged in and one financing is far enough along that its ids
(financing, contract, documents) exist, so generated requests hit real records as well as random ids.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.financing import Contract
from tests.reliability.harness import LiveApp, TokenCast, login_cast, say, size
from tests.support.factories import advance, make_document

SCENARIO = "schemathesis"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Server-Sent Events never end: a generated call would wait for ever. Checked on its own below.
STREAMING = {"financing_events"}


async def _records(people: TokenCast) -> dict[str, int]:
    """Ids of real records for every path parameter name."""
    cast = people.cast
    f = await advance(cast, "signing")
    contract = await Contract.filter(financing_id=f.id).order_by("-version").first()
    doc = await make_document(cast.supplier, cast.supplier_admin, "invoice")
    return {"financing_id": f.id, "enterprise_id": cast.supplier.id, "document_id": doc.id,
            "contract_id": contract.id if contract else 1, "user_id": cast.supplier_op.id, "poa_id": 1,
            "template_id": 1}


def _path_values(path: str, records: dict[str, int]) -> dict[str, int]:
    return {name: value for name, value in records.items() if "{" + name + "}" in path}


def test_every_operation_answers_as_documented(live: LiveApp) -> None:
    people = login_cast(live)
    records = live.run(_records(people))
    schema = schemathesis.openapi.from_url(f"{live.url}/api/openapi.json")
    tokens = [people.tokens[n] for n in ("supplier_admin", "platform", "core_op", "funder_op", "foreign_admin")]
    examples = size(8, 150)
    tally: Counter = Counter()
    failures: dict[str, str] = {}  # operation → the (shrunk) failure Hypothesis reported
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.definition.raw.get("operationId") in STREAMING:
            continue
        operations += 1
        try:
            _exercise(live, op, _path_values(op.path, records), tokens, examples, tally)
        except BaseException as exc:  # noqa: BLE001 - schemathesis raises exception groups; every operation runs
            if not isinstance(exc, (AssertionError, BaseExceptionGroup)):
                raise
            failures[f"{op.method.upper()} {op.path}"] = str(exc)[:1500]
    say(SCENARIO, f"tried: {operations} operations × {examples} generated requests each (random and real ids, "
                  f"5 people of different enterprises); checks: {', '.join(c.__name__ for c in CHECKS)}")
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
    assert tally[5] == 0
    say(SCENARIO, f"held: answers by class {dict(sorted((f'{k}xx', v) for k, v in tally.items()))}, "
                  f"0 server errors, every status, content type and body as documented")


def _exercise(live: LiveApp, op: Any, real: dict[str, int], tokens: list[str], examples: int,
              tally: Counter) -> None:
    """Generated requests for one operation (random ids and the real ones), each validated by CHECKS."""
    cases = op.as_strategy() | (op.as_strategy(path_parameters=real) if real else op.as_strategy())
    logout = op.definition.raw.get("operationId") == "logout"

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(case=cases, token=st.sampled_from(tokens))
    def run(case: Any, token: str) -> None:
        if logout:
            token = _fresh_token(live)  # logging out revokes the token: use one nobody else needs
        response = case.call(base_url=live.url, session=live.http, headers={"Authorization": f"Bearer {token}"},
                             timeout=30)
        tally[response.status_code // 100] += 1
        case.validate_response(response, checks=CHECKS)

    run()


def _fresh_token(live: LiveApp) -> str:
    resp = live.call("POST", "/api/v1/auth/login", json={"code": "sim:schemathesis-logout"})
    assert resp.status_code == 200
    return resp.json()["token"]


def test_live_events_stream_opens_as_documented(live: LiveApp) -> None:
    people = login_cast(live)
    records = live.run(_records(people))
    path = f"/api/v1/financings/{records['financing_id']}/events"
    with requests.get(live.url + path, headers={"Authorization": f"Bearer {people.tokens['supplier_op']}"},
                      stream=True, timeout=10) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        first = next(resp.iter_lines())
    foreign = live.call("GET", path, people.tokens["foreign_admin"])
    assert foreign.status_code == 404 and foreign.json()["error"]["code"]
    say(SCENARIO, f"held: the event stream (excluded from generation: it never ends) opens with {first[:40]!r}; "
                  "a foreign enterprise gets 404")
