"""Document upload and download: limits, sniffed types, content addressing, who may read."""

import hashlib

from echain.keys import SETTINGS
from tests.support.api import pdf_bytes, png_bytes


async def test_upload_stores_by_digest_and_downloads_for_members(api):
    token = await api.login("alice")
    e = await api.register(token)
    data = png_bytes(4, 4)
    doc = await api.upload(token, e["id"], "business_license", data, filename="../../etc/执照.png")
    assert doc["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["content_type"] == "image/png" and doc["size"] == len(data)
    assert doc["filename"] == "执照.png"  # path parts dropped
    stored = api.app[SETTINGS].data_dir / "blobs" / doc["sha256"][:2] / doc["sha256"][2:4] / doc["sha256"]
    assert stored.read_bytes() == data
    resp = await api.client.get(f"/api/v1/documents/{doc['id']}", headers=api.auth(token))
    assert resp.status == 200 and await resp.read() == data
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    listing = await api.call("GET", f"/api/v1/enterprises/{e['id']}/documents", token, 200)
    assert [d["id"] for d in listing["items"]] == [doc["id"]]


async def test_same_content_twice_is_stored_once(api):
    token = await api.login("alice")
    e = await api.register(token)
    a = await api.upload(token, e["id"], "other", pdf_bytes(), "a.pdf")
    b = await api.upload(token, e["id"], "other", pdf_bytes(), "b.pdf")
    assert a["sha256"] == b["sha256"] and a["id"] != b["id"]
    root = api.app[SETTINGS].data_dir / "blobs"
    assert len([p for p in root.rglob("*") if p.is_file()]) == 1


async def test_type_is_sniffed_not_trusted(api):
    token = await api.login("alice")
    e = await api.register(token)
    body = await api.upload(token, e["id"], "other", b"MZ\x90\x00 pretend exe", "photo.png", expect=415)
    assert body["error"]["message"] == "只接受 JPEG、PNG 图片或 PDF 文件"
    body = await api.upload(token, e["id"], "other", b"<svg onload=alert(1)>", "x.jpg", expect=415)
    assert body["error"]["code"] == "unsupported_file_type"


async def test_oversize_upload_is_413(api):
    token = await api.login("alice")
    e = await api.register(token)
    limit = api.app[SETTINGS].upload_max_bytes
    body = await api.upload(token, e["id"], "other", png_bytes() + b"\0" * limit, expect=413)
    assert body["error"]["code"] == "payload_too_large" and "MB" in body["error"]["message"]


async def test_bad_kind_empty_file_and_missing_file(api):
    token = await api.login("alice")
    e = await api.register(token)
    body = await api.upload(token, e["id"], "passport", png_bytes(), expect=422)
    assert body["error"]["code"] == "invalid_document_kind"
    body = await api.upload(token, e["id"], "other", b"", expect=422)
    assert body["error"]["code"] == "empty_file"
    resp = await api.client.post(f"/api/v1/enterprises/{e['id']}/documents", headers=api.auth(token), data={"kind": "other"})
    assert resp.status in (415, 422)
    assert "error" in await resp.json()


async def test_json_instead_of_multipart_is_415(api):
    token = await api.login("alice")
    e = await api.register(token)
    await api.call("POST", f"/api/v1/enterprises/{e['id']}/documents", token, 415, json={"kind": "other"})


async def test_download_only_for_members_and_operators(api):
    owner, stranger, op = await api.login("alice"), await api.login("mallory"), await api.operator()
    e = await api.register(owner)
    doc = await api.upload(owner, e["id"], "id_card_front", png_bytes())
    body = await api.call("GET", f"/api/v1/documents/{doc['id']}", stranger, 404)
    assert body["error"]["code"] == "document_not_found"
    resp = await api.client.get(f"/api/v1/documents/{doc['id']}", headers=api.auth(op))
    assert resp.status == 200
    await api.call("GET", f"/api/v1/documents/{doc['id']}", expect=401)
