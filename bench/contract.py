"""4. Contract: PDF generation, each of the three signatures, and verification, in ms (median of N runs).

Ours: `signing.render_contract`, `signing.sign` (checks the field, the signer's certificate against the
platform CA and its validity at the signing time, draws the Chinese stamp, PAdES B-B incremental update) and
`signing.verify` (pyHanko validation of every signature plus our own checks: whole-file coverage, canonical
/Contents, hidden signatures). Other side: bare pyHanko on the same PDFs with the same keys — `sign_pdf` with
its default stamp, and `validate_pdf_signature` per signature — so the ratio is what our checks and stamp cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bench.report import Result, ratio

NAME = "contract"
ROLES = ("funder", "supplier", "core")  # signing.SIGNING_ORDER, named here for the table
PEOPLE = {"funder": "王小明", "supplier": "李四", "core": "欧阳娜娜"}


def terms() -> Any:
    """A typical contract: 1.5 million yuan face value, two attachments."""
    from signing import Attachment, ContractTerms, Party

    return ContractTerms(
        contract_no="BL-2025-000123", version=1, issue_date=date(2025, 3, 1),
        funder=Party("上海浦江商业保理有限公司", "91310000MA1FL0A1BJ"),
        supplier=Party("深圳市华南精密制造有限公司", "91440300MA5D7K2Q42"),
        core=Party("广州南方重工集团股份有限公司", "91440101190472835F"),
        invoice_no="4403123400098765", trade_contract_no="HN-PO-2024-0815", face_amount=150_000_000,
        due_date=date(2025, 9, 1), advance_rate=Decimal("0.8"), financing_amount=120_000_000,
        annual_rate=Decimal("0.065"), fee_rate=Decimal("0.003"), value_date=date(2025, 3, 10),
        attachments=(Attachment("基础交易合同.pdf", hashlib.sha256(b"trade contract").hexdigest()),
                     Attachment("增值税专用发票.pdf", hashlib.sha256(b"invoice").hexdigest())),
    )


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    """Milliseconds of each of `runs` calls (after one untimed warm-up call), and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return times, result


def bare_sign(pdf: bytes, field: str, signer: Any, ca: Any) -> bytes:
    """pyHanko's own `sign_pdf` into the same field with the same key and chain (its default stamp)."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    ca_cert = asn1_x509.Certificate.load(ca.certificate.public_bytes(Encoding.DER))
    simple = signers.SimpleSigner(signing_cert=asn1_x509.Certificate.load(signer.certificate.public_bytes(Encoding.DER)),
                                  signing_key=asn1_keys.PrivateKeyInfo.load(signer.key_der),
                                  cert_registry=SimpleCertificateStore.from_certs([ca_cert]))
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES)
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=simple)
    return out.getvalue()


def bare_verify(pdf: bytes, ca: Any) -> bool:
    """pyHanko's `validate_pdf_signature` on every embedded signature; True when all bottom lines hold."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    root = asn1_x509.Certificate.load(ca.certificate.public_bytes(Encoding.DER))
    reader = PdfFileReader(io.BytesIO(pdf))
    vc = ValidationContext(trust_roots=[root], allow_fetching=False)
    return all(validate_pdf_signature(sig, vc).bottom_line for sig in reader.embedded_signatures)


def measure(runs: int) -> dict[str, Any]:
    """Every timing, ours and bare pyHanko's (synchronous: pyHanko runs its own event loop inside)."""
    from signing import SIGNATURE_FIELDS, PlatformCA, render_contract, sign, verify

    ca = PlatformCA.generate()
    t = terms()
    signers = {role: ca.issue_signer(PEOPLE[role], hashlib.sha256(role.encode()).hexdigest(), t.party(role).name,
                                     t.party(role).uscc) for role in ROLES}
    out: dict[str, Any] = {}
    out["render"], pdf = timed(lambda: render_contract(t), runs)
    ours_doc = bare_doc = pdf
    for role in ROLES:
        field = SIGNATURE_FIELDS[role]
        out[f"sign {role}"], ours_next = timed(
            lambda d=ours_doc, f=field, r=role: sign(d, f, signers[r], ca, reason="同意本合同全部条款", location="echain",
                                                     signed_at=datetime.now(UTC)), runs)
        out[f"bare sign {role}"], bare_next = timed(lambda d=bare_doc, f=field, r=role: bare_sign(d, f, signers[r], ca), runs)
        ours_doc, bare_doc = ours_next, bare_next
    out["verify"], report = timed(lambda: verify(ours_doc, ca), runs)
    out["bare verify"], bare_ok = timed(lambda: bare_verify(bare_doc, ca), runs)
    if not report.intact or not bare_ok:
        raise RuntimeError(f"a signed contract did not verify: ours {report.summary}, bare pyHanko {bare_ok}")
    out["sizes"] = {"unsigned": len(pdf), "signed": len(ours_doc), "bare_signed": len(bare_doc)}
    return out


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


async def run(quick: bool, runs: int | None = None) -> Result:
    """Medians of `runs` (default 10, quick 3) runs of each step."""
    runs = runs or (3 if quick else 10)
    m = await asyncio.to_thread(measure, runs)
    rows: list[list[Any]] = [["render contract PDF", _median(m["render"]), "—", "—", ""]]
    ratios = {}
    for role in ROLES:
        ours, bare = _median(m[f"sign {role}"]), _median(m[f"bare sign {role}"])
        ratios[f"sign_{role}"] = ratio(ours, bare)
        rows.append([f"sign #{ROLES.index(role) + 1} ({role}, incremental)", ours, bare, ratios[f"sign_{role}"],
                     round(max(m[f"sign {role}"]), 1)])
    ours, bare = _median(m["verify"]), _median(m["bare verify"])
    ratios["verify"] = ratio(ours, bare)
    rows.append(["verify 3 signatures", ours, bare, ratios["verify"], round(max(m["verify"]), 1)])
    result = Result(NAME, "Contract: PDF generation, three signatures, verification", database=None, quick=quick)
    result.table(["step", "ours median ms", "bare pyHanko median ms", "ours ÷ bare", "ours max ms"], rows)
    sizes = m["sizes"]
    result.notes += [
        f"Median of {runs} runs per step after one warm-up, one process, on the same PDFs and keys. Bare pyHanko: "
        "`sign_pdf` with its default stamp and `validate_pdf_signature` per signature, without our checks "
        "(certificate validity at signing time, whole-file coverage, canonical /Contents, hidden signatures) and "
        "without the Chinese stamp.",
        f"PDF size: {sizes['unsigned']:,} bytes unsigned, {sizes['signed']:,} bytes with three signatures.",
    ]
    result.data = {"runs": runs, "median_ms": {k: _median(v) for k, v in m.items() if k != "sizes"},
                   "ratio": ratios, "sizes": sizes}
    return result
