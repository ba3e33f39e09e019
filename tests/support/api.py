"""Test helpers: act as people through the real HTTP API."""

from __future__ import annotations

import io
import itertools
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from echain.samples import pdf_bytes, png_bytes  # noqa: F401 - re-exported for the tests
from workflow.identifiers import make_resident_id, make_uscc

_serial = itertools.count(1)


def new_uscc() -> str:
    """A valid, unique unified social credit code."""
    return make_uscc(f"91370100MA{next(_serial):07d}")


def new_resident_id(birth: str = "19800101") -> str:
    """A valid resident ID number (Jinan, Shandong)."""
    return make_resident_id(f"370102{birth}{next(_serial) % 1000:03d}")


def enterprise_body(**overrides: Any) -> dict[str, Any]:
    """A complete, valid registration body."""
    body = {
        "name": "山东测试供应链有限公司",
        "uscc": new_uscc(),
        "legal_rep_name": "张三",
        "legal_rep_id": new_resident_id(),
        "contact_name": "李四",
        "contact_phone": "13800138000",
        "business_roles": ["supplier"],
    }
    body.update(overrides)
    return body


class ApiClient:
    """Wraps the aiohttp test client with login and common flows."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def app(self):  # noqa: ANN201
        """The application under test."""
        return self.client.app

    async def login(self, name: str) -> str:
        """Log in as the simulator person `name`; returns the bearer token."""
        resp = await self.client.post("/api/v1/auth/login", json={"code": f"sim:{name}"})
        assert resp.status == 200, await resp.text()
        return (await resp.json())["token"]

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        """The Authorization header for a token."""
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, token: str | None = None, expect: int | None = None, **kw: Any) -> Any:
        """Make a request; check the status when `expect` is given; return parsed JSON (or None)."""
        headers = kw.pop("headers", {}) | (self.auth(token) if token else {})
        resp = await self.client.request(method, path, headers=headers, **kw)
        text = await resp.text()
        if expect is not None:
            assert resp.status == expect, f"{method} {path}: {resp.status} {text}"
        if resp.content_type == "application/json" and text:
            return await resp.json()
        return None

    async def upload(self, token: str, enterprise_id: int, kind: str, data: bytes, filename: str = "f.png",
                     expect: int | None = 201) -> Any:
        """Upload one document."""
        form = FormData()
        form.add_field("kind", kind)
        form.add_field("file", io.BytesIO(data), filename=filename, content_type="application/octet-stream")
        return await self.call("POST", f"/api/v1/enterprises/{enterprise_id}/documents", token, expect, data=form)

    async def register(self, token: str, **overrides: Any) -> dict[str, Any]:
        """Register an enterprise (draft)."""
        return await self.call("POST", "/api/v1/enterprises", token, 201, json=enterprise_body(**overrides))

    async def onboard(self, token: str, operator_token: str, **overrides: Any) -> dict[str, Any]:
        """Register, upload the required documents, confirm, submit, and have the operator approve."""
        e = await self.register(token, **overrides)
        for kind in ("business_license", "id_card_front", "id_card_back"):
            await self.upload(token, e["id"], kind, png_bytes())
        await self.call("POST", f"/api/v1/enterprises/{e['id']}/confirm", token, 200)
        await self.call("POST", f"/api/v1/enterprises/{e['id']}/submit", token, 200)
        return await self.call("POST", f"/api/v1/admin/enterprises/{e['id']}/review", operator_token, 200,
                               json={"decision": "approve"})

    async def operator(self, name: str = "operator") -> str:
        """Log in as a person made platform operator (as `echain admin grant` does)."""
        from models.people import User
        from workflow.accounts import grant_operator

        token = await self.login(name)
        user = await User.get(id=(await self.call("GET", "/api/v1/me", token, 200))["user"]["id"])
        await grant_operator(user.openid)
        return token

    async def add_member(self, admin_token: str, enterprise_id: int, name: str, roles: list[str]) -> str:
        """Invite person `name` with member roles; returns their token."""
        inv = await self.call("POST", f"/api/v1/enterprises/{enterprise_id}/invitations", admin_token, 201,
                              json={"roles": roles})
        token = await self.login(name)
        await self.call("POST", "/api/v1/invitations/accept", token, 200, json={"code": inv["code"]})
        return token

    async def financing(self, supplier_token: str, supplier_id: int, core_id: int, **overrides: Any) -> dict[str, Any]:
        """Upload an invoice and submit a financing (face 500,000.00, requested 400,000.00, due in 90 days)."""
        from datetime import timedelta

        from workflow.financing.transition import china_today

        doc = await self.upload(supplier_token, supplier_id, "invoice", pdf_bytes(), "invoice.pdf")
        body = {
            "supplier_id": supplier_id, "core_id": core_id, "invoice_no": f"INV{next(_serial):08d}",
            "contract_no": "HT-2026-001", "face_amount": "500000.00", "requested_amount": "400000.00",
            "due_date": (china_today() + timedelta(days=90)).isoformat(), "attachment_ids": [doc["id"]],
        } | overrides
        return await self.call("POST", "/api/v1/financings", supplier_token, 201, json=body)
