"""The factoring contract's PDF and its signature verification, for the financing's parties and operators."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, Field

from echain.api import ApiRouter, Call
from echain.keys import DEPS
from workflow.financing import esign

router = ApiRouter()
TAG = "合同"


class SignatureCheckOut(BaseModel):
    field: str = Field(title="签名域")
    signer: str | None = Field(title="签署人（证书姓名）")
    organization: str | None = Field(title="签署企业（证书单位）")
    signed_at: str | None = Field(title="签署时间（签署人声明）")
    intact: bool = Field(title="签名覆盖的内容未被修改")
    valid: bool = Field(title="签名值有效")
    trusted: bool = Field(title="证书由本平台 CA 签发且有效")
    ok: bool = Field(title="该签名通过校验")
    summary: str = Field(title="说明")
    problems: list[str] = Field(title="问题")


class ContractVerificationOut(BaseModel):
    contract_id: int = Field(title="合同ID")
    financing_id: int = Field(title="融资ID")
    version: int = Field(title="合同版本")
    voided: bool = Field(title="该版本已作废（已修订）")
    sha256: str = Field(title="当前文件 SHA-256")
    recorded_sha256: str = Field(title="平台记录的 SHA-256")
    matches_record: bool = Field(title="文件与平台记录一致")
    intact: bool = Field(title="文件完整且所有签名有效")
    tampered: bool = Field(title="文件已被篡改")
    summary: str = Field(title="结论")
    error: str | None = Field(None, title="无法解析时的原因")
    unsigned_fields: list[str] = Field(title="尚未签署的签名域")
    signatures: list[SignatureCheckOut] = Field(title="各签名")


def _services(call: Call) -> esign.ContractServices:
    services = call.app[DEPS].contracts
    assert services is not None, "Deps.contracts is wired in echain/app.py"
    return services


@router.get("/api/v1/contracts/{contract_id}/verification", summary="合同验签（签名与完整性）", tag=TAG,
            response=ContractVerificationOut)
async def verify_contract(call: Call) -> ContractVerificationOut:
    """Each signature (signer, time, intact) and whether the document was changed after signing."""
    report = await esign.verification(_services(call), call.user, call.ids["contract_id"])
    return ContractVerificationOut.model_validate(report)


@router.get("/api/v1/contracts/{contract_id}/pdf", summary="下载合同 PDF（当前版本的最新签署文本）", tag=TAG,
            binary_response="application/pdf")
async def download_contract(call: Call) -> web.Response:
    """The current revision: unsigned after issuing, then with each signature added."""
    pdf = await esign.readable_pdf(_services(call), call.user, call.ids["contract_id"])
    name = esign.pdf_filename(pdf.financing, pdf.contract.version)
    return web.Response(body=pdf.data, content_type="application/pdf", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store",
        "X-Content-SHA256": pdf.contract.sha256,
    })
