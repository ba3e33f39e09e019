"""PAdES signatures on the contract, and their verification.

`sign` adds ONE signature as an incremental update into an existing empty signature field: the bytes of the
earlier revisions (and thus earlier signatures) are never touched. Signatures are PAdES baseline B-B
(/SubFilter /ETSI.CAdES.detached, SHA-256, ECDSA), embedding the signer certificate and the platform CA.

No timestamp: there is no TSA reachable offline, so the signing time in a signature is the time *claimed* by
the platform (the CMS signing-time attribute and /M), not a trusted timestamp (B-T). The app's hash-chained
ledger records when each signature was made; a TSA can be added later (pyHanko `timestamper=`) without changing
the format of existing signatures.

`verify` reports each signature and a document-level verdict. It trusts one CA certificate or several: after
the platform CA is rotated, the earlier CA certificates stay trusted for verification (never for issuing).
The document is intact only when every signature's pyHanko `bottom_line` holds (digest, CMS signature, chain
to one of our CAs, key usage, and — for earlier signatures — that later revisions only filled signature
fields), AND the last signature covers the whole file
(nothing unsigned was appended), AND every signature's /Contents is byte-for-byte what the signer wrote (pyHanko
decodes hex case-insensitively and ignores the zero padding, so without this check some one-byte changes inside
/Contents would go unnoticed).

Both functions are pure over bytes and CPU-bound (sign ≈ tens of ms, verify grows with the number of
signatures): call them with `asyncio.to_thread` or a process pool. They run their own short event loop
internally, so they must not be called from a thread that is already running one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import cms as asn1_cms
from asn1crypto import keys as asn1_keys
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, SimpleSigner
from pyhanko.sign.signers.pdf_signer import PdfCMSSignedAttributes
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.ca import DOCUMENT_SIGNING_EKU, PlatformCA, SignerIdentity
from signing.stamp import ChineseStampStyle

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "UTC+8")
KEY_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"},
    match_all_key_usages=True,
    extd_key_usage={DOCUMENT_SIGNING_EKU.dotted_string},
)
CaLike = PlatformCA | x509.Certificate | bytes | str
TrustRoots = CaLike | list[CaLike] | tuple[CaLike, ...]  # the current CA plus earlier ones (after a rotation)
_HEX_UPPER = re.compile(rb"[0-9A-F]*")
_HEX_LOWER = re.compile(rb"[0-9a-f]*")


class SignError(Exception):
    """The document cannot be signed in that field (missing, already signed, unreadable PDF)."""


def _ca_certificate(ca: CaLike) -> x509.Certificate:
    if isinstance(ca, PlatformCA):
        return ca.certificate
    if isinstance(ca, x509.Certificate):
        return ca
    data = ca.encode() if isinstance(ca, str) else ca
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _trust_roots(roots: TrustRoots) -> list[x509.Certificate]:
    """One or several CA certificates, duplicates dropped, order kept; at least one."""
    items = list(roots) if isinstance(roots, list | tuple) else [roots]
    certs: list[x509.Certificate] = []
    for item in items:
        cert = _ca_certificate(item)
        if cert not in certs:
            certs.append(cert)
    if not certs:
        raise ValueError("at least one trusted CA certificate is required")
    return certs


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class _OnEventLoop(RuntimeError):
    pass


def _run(coro):  # noqa: ANN001, ANN202
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise _OnEventLoop("signing.pades runs CPU-bound work: call it via asyncio.to_thread, not on the event loop")


# ---- signing --------------------------------------------------------------------------------------------------


def sign(pdf: bytes, field_name: str, signer: SignerIdentity, ca: CaLike, *, reason: str, location: str = "",
         signed_at: dt.datetime | None = None) -> bytes:
    """`pdf` with one more PAdES signature, by `signer`, in the existing empty field `field_name`.

    The app must have verified the document (`verify`) and the signer's turn and face check beforehand.
    `signed_at` (timezone-aware) is the claimed signing time; default now.
    """
    if signed_at is None:
        signed_at = dt.datetime.now(dt.UTC)
    if signed_at.tzinfo is None:
        raise ValueError("signed_at must be timezone-aware")
    ca_cert = _ca_certificate(ca)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        fields = {name: value for name, value, _ in enumerate_sig_fields(writer.prev)}
    except Exception as exc:
        raise SignError(f"无法读取待签署的 PDF：{exc}") from exc
    if field_name not in fields:
        raise SignError(f"合同中没有签名域 {field_name}")
    if fields[field_name] is not None:
        raise SignError(f"签名域 {field_name} 已经签署")

    cert = signer.certificate
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SignError("签署人证书不是由该平台 CA 签发") from exc
    if not cert.not_valid_before_utc <= signed_at <= cert.not_valid_after_utc:
        raise SignError("签署时间不在签署人证书有效期内，请重新签发证书")
    ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
    issuers = [_asn1(ca_cert)] + [_asn1(c) for c in signer.chain if c.public_bytes(serialization.Encoding.DER) != ca_der]
    pyhanko_signer = SimpleSigner(
        signing_cert=_asn1(cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(signer.key_der),
        cert_registry=SimpleCertificateStore.from_certs(issuers),
    )
    name = signer.common_name or ""
    local = signed_at.astimezone(CHINA_TZ)
    style = ChineseStampStyle(lines=(
        name,
        signer.organization or "",
        f"数字签名 {local:%Y-%m-%d %H:%M:%S} (UTC+8)",
        f"证书序列号 {cert.serial_number:X}"[:40],
    ))
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason or None,
        location=location or None,
        name=name or None,
    )
    pdf_signer = PdfSigner(meta, pyhanko_signer, stamp_style=style)
    output = io.BytesIO()
    try:
        _run(_sign_async(pdf_signer, writer, output, signed_at, _reserve(signer, issuers)))
    except SigningError as exc:
        raise SignError(f"签署失败：{exc}") from exc
    return output.getvalue()


def _reserve(signer: SignerIdentity, issuers: list[asn1_x509.Certificate]) -> int:
    """Hex digits to reserve for the CMS: the certificates it embeds plus ample room for the rest (signed
    attributes ≈ 150 bytes, signer info and ECDSA signature ≈ 250 bytes)."""
    embedded = len(signer.cert_der) + sum(len(c.dump()) for c in issuers)
    return 2 * (embedded + 2048)


async def _sign_async(pdf_signer: PdfSigner, writer: IncrementalPdfFileWriter, output: io.BytesIO,
                      signed_at: dt.datetime, bytes_reserved: int) -> None:
    """PdfSigner.async_sign_pdf, except that the signing time is ours rather than the system clock, and the
    space for the CMS is computed rather than estimated by a dry-run signature (a third of the signing time)."""
    session = pdf_signer.init_signing_session(writer, existing_fields_only=True)
    session.system_time = signed_at
    validation_info = await session.perform_presign_validation(writer)
    tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=bytes_reserved)
    prepared_digest, res_output = tbs.digest_tbs_document(output=output)
    post = await tbs.perform_signature(
        document_digest=prepared_digest.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=signed_at),
    )
    await post.post_signature_processing(res_output)


# ---- verification ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureReport:
    field_name: str
    signer_name: str | None  # certificate CN
    signer_organization: str | None  # certificate O
    signer_org_id: str | None  # certificate organizationIdentifier (NTRCN-<USCC>)
    signer_cert_sha256: str | None
    signed_at: dt.datetime | None  # claimed by the signer (no trusted timestamp)
    reason: str | None
    revision: int | None  # index of the revision this signature signed (0 = first)
    byte_range: tuple[int, ...]  # the /ByteRange: the signed bytes are all but the /Contents gap
    intact: bool  # the covered bytes hash to the signed digest and /Contents is unaltered
    valid: bool  # the CMS signature verifies
    trusted: bool  # the certificate chains to our CA and is fit for document signing at verification time
    coverage: str  # entire_file / entire_revision / contiguous_block / unclear
    modification_level: str | None  # for later revisions: none / lta_updates / form_filling / annotations / other
    docmdp_ok: bool | None  # later revisions only made changes the diff policy allows
    bottom_line: bool  # pyHanko's overall verdict
    problems: tuple[str, ...]
    summary: str

    @property
    def ok(self) -> bool:
        return self.bottom_line and not self.problems


@dataclass(frozen=True)
class VerificationReport:
    sha256: str
    intact: bool  # every signature ok and the last one covers the whole file
    tampered: bool  # integrity broken (as opposed to merely untrusted)
    signatures: tuple[SignatureReport, ...]
    unsigned_fields: tuple[str, ...]
    summary: str
    error: str | None = None  # why the file could not be analysed, if it could not

    @property
    def signed_fields(self) -> tuple[str, ...]:
        return tuple(s.field_name for s in self.signatures)

    def signature(self, field_name: str) -> SignatureReport | None:
        return next((s for s in self.signatures if s.field_name == field_name), None)


def _attr(cert: asn1_x509.Certificate | None, key: str) -> str | None:
    if cert is None:
        return None
    value = cert.subject.native.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


def _contents_canonical(pdf: bytes, byte_range: Iterable[int], contents: bytes) -> bool:
    """The raw /Contents string is exactly `<` HEX(DER) zero-padding `>`, one case throughout."""
    try:
        _, len1, start2, _ = list(byte_range)
        raw = pdf[len1:start2]
        info = asn1_parser.parse(contents)
    except (ValueError, TypeError):
        return False
    der_len = len(info[3]) + len(info[4]) + len(info[5])
    if len(raw) < 2 or raw[:1] != b"<" or raw[-1:] != b">":
        return False
    body = raw[1:-1]
    if len(body) != 2 * len(contents) or any(contents[der_len:]):
        return False
    if not (_HEX_UPPER.fullmatch(body) or _HEX_LOWER.fullmatch(body)):
        return False
    return bytes.fromhex(body.decode("ascii")) == contents


def _cms_problems(emb, trusted: list[x509.Certificate]) -> list[str]:  # noqa: ANN001 - EmbeddedPdfSignature
    """Tampering in the parts of the CMS that the signature itself does not cover.

    The last signature's /Contents is covered by no digest, and in CMS the certificate set and the outer
    SignedData fields are unsigned. So: the structure must be exactly what `sign` writes, and every embedded certificate must be the signer's own (bound by the signed ESS attribute) or
    verify as issued by another embedded certificate or by one of our CAs — a corrupted copy of a CA certificate fails
    its signature check, while an intact foreign CA only makes the signature untrusted.
    """
    problems: list[str] = []
    try:
        content = bytes(emb.pkcs7_content)
        info = asn1_parser.parse(content)
        der = content[: len(info[3]) + len(info[4]) + len(info[5])]
        sd = asn1_cms.ContentInfo.load(der)["content"]
        signer_infos = list(sd["signer_infos"])
        si = signer_infos[0]
        if (sd["version"].native != "v1" or len(signer_infos) != 1 or si["version"].native != "v1"
                or [a["algorithm"].native for a in sd["digest_algorithms"]] != [si["digest_algorithm"]["algorithm"].native]
                or sd["encap_content_info"]["content_type"].native != "data"
                or sd["encap_content_info"]["content"].native is not None
                or sd["crls"].native or si["unsigned_attrs"].native):
            problems.append("签名数据的结构被改动")
        signer_der = emb.signer_cert.dump()
        embedded = [x509.load_der_x509_certificate(c.chosen.dump()) for c in sd["certificates"]]
        issuers = [*embedded, *trusted]
        for cert in embedded:
            if cert.public_bytes(serialization.Encoding.DER) == signer_der:
                continue
            if not any(_issued_by(cert, issuer) for issuer in issuers):
                problems.append("签名中嵌入的证书被改动")
                break
    except Exception as exc:  # noqa: BLE001 - unparsable means altered
        problems.append(f"签名数据无法解析（{type(exc).__name__}）")
    return problems


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _coverage_name(coverage: SignatureCoverageLevel | None) -> str:
    return {
        SignatureCoverageLevel.ENTIRE_FILE: "entire_file",
        SignatureCoverageLevel.ENTIRE_REVISION: "entire_revision",
        SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "contiguous_block",
    }.get(coverage, "unclear") if coverage is not None else "unclear"


def _who(field: str, name: str | None, org: str | None) -> str:
    parts = "，".join(p for p in (name, org) if p)
    return f"签名 {field}（{parts}）" if parts else f"签名 {field}"


async def _verify_signatures(reader: PdfFileReader, pdf: bytes, roots: list[x509.Certificate],
                             vc: ValidationContext) -> list[SignatureReport]:
    reports = []
    embedded = reader.embedded_signatures
    for index, emb in enumerate(embedded):
        last = index == len(embedded) - 1
        field = _text(emb.field_name) if emb.field_name else f"#{index + 1}"
        cert = None
        problems: list[str] = []
        status: PdfSignatureStatus | None = None
        try:
            cert = emb.signer_cert
            status = await async_validate_pdf_signature(emb, vc, key_usage_settings=KEY_USAGE)
        except Exception as exc:  # a damaged signature must be reported, not crash the check
            problems.append(f"签名数据无法解析或校验（{type(exc).__name__}）")
        name, org = _attr(cert, "common_name"), _attr(cert, "organization_name")
        canonical = _contents_canonical(pdf, emb.byte_range, emb.pkcs7_content) if status else False
        cms_problems = _cms_problems(emb, roots) if status else []
        if status is not None:
            if not status.intact:
                problems.append("签名所覆盖的文件内容已被修改")
            elif not canonical:
                problems.append("签名值区域（/Contents）已被改动")
            problems.extend(cms_problems)
            if status.intact and not status.valid:
                problems.append("签名值不正确")
            if status.intact and status.valid and not status.trusted:
                problems.append("签名证书不是由本平台 CA 签发、已过期或不适用于文件签署，不受信任")
            if status.docmdp_ok is False:
                problems.append("签名之后文件被做了不允许的修改")
            if last and status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
                problems.append("签名之后文件被追加了未经签名的内容")
        bottom = bool(status and status.bottom_line)
        mod = status.modification_level if status else None
        signed_at = None
        if status is not None:
            signed_at = status.signer_reported_dt
        reason = None
        try:
            reason = emb.sig_object.get("/Reason")
        except Exception:  # noqa: BLE001 - best effort display field
            reason = None
        who = _who(field, name, org)
        if not problems and bottom:
            tail = "签名后文件未被修改" if last else "其后仅追加了后续签名"
            summary = f"{who}有效：{tail}"
        else:
            summary = f"{who}无效：" + "；".join(problems or ["未通过校验"])
        reports.append(SignatureReport(
            field_name=field, signer_name=name, signer_organization=org,
            signer_org_id=_attr(cert, "organization_identifier"),
            signer_cert_sha256=hashlib.sha256(cert.dump()).hexdigest() if cert is not None else None,
            signed_at=signed_at, reason=_text(reason) if reason is not None else None,
            revision=emb.signed_revision if status else None,
            byte_range=tuple(int(v) for v in emb.byte_range),
            intact=bool(status and status.intact and canonical and not cms_problems),
            valid=bool(status and status.valid), trusted=bool(status and status.trusted),
            coverage=_coverage_name(status.coverage if status else None),
            modification_level=mod.name.lower() if mod is not None else None,
            docmdp_ok=status.docmdp_ok if status else None,
            bottom_line=bottom, problems=tuple(problems), summary=summary,
        ))
    return reports


def _broken(sha: str, error: str) -> VerificationReport:
    return VerificationReport(sha256=sha, intact=False, tampered=True, signatures=(), unsigned_fields=(),
                              summary="文件已损坏或被篡改，无法解析其签名", error=error)


def verify(pdf: bytes, ca_cert: TrustRoots, *, at: dt.datetime | None = None) -> VerificationReport:
    """Check every signature in `pdf` against our CA (or several: the current one and earlier ones still trusted
    after a rotation — a signature is trusted when it chains to any of them); never raises on a damaged file.

    `at` is the moment certificates are validated for (default now); pass the recorded signing time to check
    a contract after a signer's certificate has expired.
    """
    sha = hashlib.sha256(pdf).hexdigest()
    roots = _trust_roots(ca_cert)
    vc = ValidationContext(trust_roots=[_asn1(c) for c in roots], allow_fetching=False, moment=at)
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=True)
        unsigned = tuple(_text(name) for name, value, _ in enumerate_sig_fields(reader) if value is None)
        reports = _run(_verify_signatures(reader, pdf, roots, vc))
        missing = set(_raw_byte_ranges(pdf)) - {r.byte_range for r in reports}
        if missing:  # e.g. a changed /Root hides the form: signatures exist that the reader no longer sees
            return _hidden(sha, tuple(reports), unsigned, len(missing))
        return _summarise(sha, tuple(reports), unsigned)
    except _OnEventLoop:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to analyse a signed contract means tampering
        return _broken(sha, f"{type(exc).__name__}: {exc}")


_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def _raw_byte_ranges(pdf: bytes) -> list[tuple[int, ...]]:
    """Every signature dictionary's /ByteRange, found by scanning the bytes rather than the object graph."""
    return [tuple(int(v) for v in m.groups()) for m in _BYTE_RANGE.finditer(pdf)]


def _hidden(sha: str, reports: tuple[SignatureReport, ...], unsigned: tuple[str, ...],
            hidden: int) -> VerificationReport:
    return VerificationReport(
        sha256=sha, intact=False, tampered=True, signatures=reports, unsigned_fields=unsigned,
        summary=f"文件已被篡改：文件中有 {len(reports) + hidden} 个签名，只能识别其中 {len(reports)} 个",
        error=f"{hidden} signature dictionaries are not reachable from the document catalog",
    )


def _text(value: object) -> str:
    """A PDF string as text, whatever a damaged file turned it into."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _summarise(sha: str, reports: tuple[SignatureReport, ...], unsigned: tuple[str, ...]) -> VerificationReport:
    pending = f"；尚有 {len(unsigned)} 个签名域未签署（{'、'.join(unsigned)}）" if unsigned else ""
    if not reports:
        return VerificationReport(sha256=sha, intact=False, tampered=False, signatures=(), unsigned_fields=unsigned,
                                  summary="文件没有电子签名" + pending)
    last = reports[-1]
    content_broken = [r for r in reports if not r.intact or not r.valid]
    changed_after = [r for r in reports if r.docmdp_ok is False or (r is last and r.coverage != "entire_file")]
    untrusted = [r for r in reports if r.intact and r.valid and not r.trusted]
    tampered = bool(content_broken or changed_after)
    intact = not tampered and all(r.ok for r in reports)
    if intact:
        summary = f"文件完整，{len(reports)} 个签名均有效" + pending
    elif content_broken:
        names = "、".join(r.field_name for r in content_broken)
        summary = f"文件已被篡改：签名 {names} 所覆盖的内容或签名值被修改"
    elif changed_after:
        # the change sits after the latest signature that still sees it
        summary = f"文件已被篡改：签名 {changed_after[-1].field_name} 之后内容被修改"
    elif untrusted:
        names = "、".join(r.field_name for r in untrusted)
        summary = f"签名不受信任：签名 {names} 的证书不是由本平台 CA 签发或已失效"
    else:
        summary = "签名未通过校验：" + "；".join(r.summary for r in reports if not r.ok)
    return VerificationReport(sha256=sha, intact=intact, tampered=tampered, signatures=reports,
                              unsigned_fields=unsigned, summary=summary)
