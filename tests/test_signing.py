"""signing/: platform CA, per-signer certificates, the contract PDF, PAdES signatures and tamper detection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import multiprocessing
import pickle
import re
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from signing import (
    SIGNATURE_FIELDS,
    SIGNING_ORDER,
    Attachment,
    CAError,
    ContractError,
    ContractTerms,
    Party,
    PlatformCA,
    SignerIdentity,
    SignerKeyError,
    SignError,
    amount_in_chinese_capital,
    derive_passphrase,
    format_percent,
    format_yuan,
    render_contract,
    sign,
    verify,
)
from signing.amounts import interest, interest_days
from signing.ca import CA_CERT_FILE, CA_KEY_FILE, DOCUMENT_SIGNING_EKU
from signing.contract import contract_values, load_template
from signing.fonts import find_system_cjk_font, register_cjk_font
from workflow.financing import money

PASSPHRASE = derive_passphrase("test-secret-key-that-is-long-enough-for-hkdf-0123456789", context="platform-ca")
TIMINGS: dict[str, float] = {}
# Claimed signing times, set when the signers' certificates are issued (`signers`): a time taken at import would
# fall before the certificates' validity once collection and this module lie more than minutes apart.
SIGNED_AT: dict[str, datetime] = {}
PEOPLE = {"funder": "王小明", "supplier": "李四", "core": "欧阳娜娜"}


def _timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    TIMINGS[label] = (time.perf_counter() - start) * 1000
    return result


# ---- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> PlatformCA:
    return PlatformCA.generate()


@pytest.fixture(scope="module")
def other_ca() -> PlatformCA:
    return PlatformCA.generate(common_name="Some Other CA", organization="Elsewhere")


def make_terms(**overrides) -> ContractTerms:
    values = dict(
        contract_no="BL-2025-000123",
        version=1,
        issue_date=date(2025, 3, 1),
        funder=Party("上海浦江商业保理有限公司", "91310000MA1FL0A1BJ"),
        supplier=Party("深圳市华南精密制造有限公司", "91440300MA5D7K2Q42"),
        core=Party("广州南方重工集团股份有限公司", "91440101190472835F"),
        invoice_no="4403123400098765",
        trade_contract_no="HN-PO-2024-0815",
        face_amount=150_000_000,
        due_date=date(2025, 9, 1),
        advance_rate=Decimal("0.8"),
        financing_amount=120_000_000,
        annual_rate=Decimal("0.065"),
        fee_rate=Decimal("0.003"),
        value_date=date(2025, 3, 10),
        attachments=(
            Attachment("基础交易合同.pdf", hashlib.sha256(b"trade contract").hexdigest()),
            Attachment("增值税专用发票.pdf", hashlib.sha256(b"invoice").hexdigest()),
        ),
    )
    values.update(overrides)
    return ContractTerms(**values)


@pytest.fixture(scope="module")
def terms() -> ContractTerms:
    return make_terms()


@pytest.fixture(scope="module")
def signers(ca: PlatformCA, terms: ContractTerms) -> dict[str, SignerIdentity]:
    now = datetime.now(UTC).replace(microsecond=0)
    SIGNED_AT.update(funder=now, supplier=now + timedelta(minutes=1), core=now + timedelta(minutes=2))
    return {
        role: ca.issue_signer(PEOPLE[role], hashlib.sha256(role.encode()).hexdigest(), terms.party(role).name,
                              terms.party(role).uscc)
        for role in SIGNING_ORDER
    }


@pytest.fixture(scope="module")
def contract_pdf(terms: ContractTerms) -> bytes:
    return _timed("render_contract", render_contract, terms)


@pytest.fixture(scope="module")
def revisions(contract_pdf: bytes, signers: dict[str, SignerIdentity], ca: PlatformCA) -> list[bytes]:
    """The contract after 0, 1, 2 and 3 signatures (funder → supplier → core)."""
    docs = [contract_pdf]
    for role in SIGNING_ORDER:
        docs.append(_timed(f"sign {role}", sign, docs[-1], SIGNATURE_FIELDS[role], signers[role], ca,
                           reason="同意本合同全部条款", location="echain", signed_at=SIGNED_AT[role]))
    return docs


@pytest.fixture(scope="module")
def signed_pdf(revisions: list[bytes]) -> bytes:
    return revisions[-1]


# ---- helpers --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(rb"/([A-Za-z0-9_.+-]+)\s+[\d.]+\s+Tf|\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(literal):
        ch = literal[i:i + 1]
        if ch != b"\\":
            out += ch
            i += 1
            continue
        nxt = literal[i + 1:i + 2]
        octal = re.match(rb"[0-7]{1,3}", literal[i + 1:i + 4])
        if octal:
            out.append(int(octal.group(0), 8) & 0xFF)
            i += 1 + len(octal.group(0))
        else:
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def extract_text(pdf: bytes) -> str:
    """The text shown on the pages of a PDF we generated (reportlab CID or simple fonts)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    chunks: list[str] = []
    for page_ref in reader.root["/Pages"]["/Kids"]:
        page = page_ref.get_object()
        fonts = page["/Resources"]["/Font"]
        cid = {str(name)[1:] for name, font in fonts.items() if font.get_object()["/Subtype"] == "/Type0"}
        contents = page["/Contents"]
        streams = contents if isinstance(contents, generic.ArrayObject) else [contents]
        data = b"".join(s.get_object().data for s in streams)
        current = ""
        for match in _TOKEN.finditer(data):
            if match.group(1):
                current = match.group(1).decode()
                continue
            token = match.group(0)
            raw = bytes.fromhex(token[1:-1].decode()) if token.startswith(b"<") else _unescape(token[1:-1])
            chunks.append(raw.decode("utf-16-be", "replace") if current in cid else raw.decode("latin-1"))
    return "".join(chunks)


def _sig_fields(pdf: bytes) -> dict[str, tuple[int, list[float], bool]]:
    """field name → (page index, rect, filled)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    pages = [p.get_object() for p in reader.root["/Pages"]["/Kids"]]
    out = {}
    for field_ref in reader.root["/AcroForm"]["/Fields"]:
        field = field_ref.get_object()
        if field.get("/FT") != "/Sig":
            continue
        page_index = next(i for i, p in enumerate(pages)
                          if any(a.get_object() is field or a.idnum == field_ref.idnum for a in p.get("/Annots", [])))
        out[str(field["/T"])] = (page_index, [float(v) for v in field["/Rect"]], "/V" in field)
    return out


def _flip(pdf: bytes, position: int, mask: int = 0x01) -> bytes:
    data = bytearray(pdf)
    data[position] ^= mask
    return bytes(data)


def _byte_ranges(pdf: bytes) -> list[list[int]]:
    reader = PdfFileReader(io.BytesIO(pdf))
    return [list(e.byte_range) for e in reader.embedded_signatures]


def _assert_tampered(pdf: bytes, ca: PlatformCA, where: str) -> None:
    report = verify(pdf, ca)
    assert not report.intact, f"{where}: {report.summary}"
    assert report.tampered, f"{where}: {report.summary}"
    assert report.summary.startswith("文件已") or "篡改" in report.summary, where


# ---- amounts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fen", "text"), [
    (0, "零元整"),
    (1, "壹分"),
    (5, "伍分"),
    (10, "壹角"),
    (15, "壹角伍分"),
    (100, "壹元整"),
    (105, "壹元零伍分"),
    (110, "壹元壹角"),
    (1_000, "壹拾元整"),
    (1_600, "壹拾陆元整"),
    (10_100, "壹佰零壹元整"),
    (101_000, "壹仟零壹拾元整"),
    (168_032, "壹仟陆佰捌拾元叁角贰分"),
    (1_000_000, "壹万元整"),
    (1_000_100, "壹万零壹元整"),
    (10_700_053, "壹拾万柒仟元伍角叁分"),
    (10_007_000, "壹拾万零柒拾元整"),
    (120_000_000, "壹佰贰拾万元整"),
    (100_000_110, "壹佰万零壹元壹角"),
    (123_456_789, "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"),
    (1_000_000_000, "壹仟万元整"),
    (1_001_000_000, "壹仟零壹万元整"),
    (10_000_000_000, "壹亿元整"),
    (10_001_000_000, "壹亿零壹万元整"),
    (10_010_000_000, "壹亿零壹拾万元整"),
    (10_100_000_000, "壹亿零壹佰万元整"),
    (10_000_100_000, "壹亿零壹仟元整"),
    (10_000_000_100, "壹亿零壹元整"),
    (300_000_000_000_000, "叁万亿元整"),
    (100_000_000_100_000, "壹万亿零壹仟元整"),
])
def test_amount_in_chinese_capital(fen: int, text: str) -> None:
    assert amount_in_chinese_capital(fen) == text


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100", Decimal("1")])
def test_amount_in_chinese_capital_refuses_non_fen(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        amount_in_chinese_capital(bad)  # type: ignore[arg-type]


def test_display_formats_and_interest_match_the_workflow_money_rules() -> None:
    assert format_yuan(120_000_000) == "1,200,000.00"
    assert format_yuan(5) == "0.05"
    assert format_percent(Decimal("0.065")) == "6.50%"
    assert format_percent(Decimal("0.1")) == "10.00%"
    assert format_percent(Decimal("0.06125")) == "6.125%"
    days = interest_days(date(2025, 3, 10), date(2025, 9, 1))
    assert days == money.interest_days(date(2025, 3, 10), date(2025, 9, 1)) == 175
    for principal, rate in [(120_000_000, Decimal("0.065")), (333_333, Decimal("0.0725")), (1, Decimal("0.5"))]:
        assert interest(principal, rate, days) == money.interest(principal, rate, days)


# ---- CA and signer certificates -------------------------------------------------------------------------------


def test_ca_is_created_once_then_loaded(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    created = PlatformCA.load_or_create(directory, passphrase=PASSPHRASE)
    key_file, cert_file = directory / CA_KEY_FILE, directory / CA_CERT_FILE
    assert key_file.is_file() and cert_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    key_pem = key_file.read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in key_pem
    with pytest.raises(TypeError):  # encrypted: unusable without the passphrase
        serialization.load_pem_private_key(key_pem, password=None)

    loaded = PlatformCA.load_or_create(directory, passphrase=PASSPHRASE)
    assert loaded.cert_der == created.cert_der
    assert key_file.read_bytes() == key_pem
    with pytest.raises(CAError):
        PlatformCA.load_or_create(directory, passphrase=b"wrong passphrase")
    supplied = PlatformCA.from_pem(cert_file.read_bytes(), key_pem, PASSPHRASE)
    assert supplied.cert_der == created.cert_der

    cert = created.certificate
    assert cert.subject == cert.issuer
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert [p for p in directory.iterdir() if p.name.startswith(".tmp")] == []


def test_concurrent_first_start_yields_one_ca(tmp_path: Path) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        results.append(PlatformCA.load_or_create(tmp_path, passphrase=PASSPHRASE).cert_der)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert (tmp_path / CA_CERT_FILE).read_bytes() == x509.load_der_x509_certificate(results[0]).public_bytes(
        serialization.Encoding.PEM)


def test_passphrases_are_derived_per_purpose() -> None:
    secret = "test-secret-key-that-is-long-enough-for-hkdf-0123456789"
    assert derive_passphrase(secret, context="platform-ca") == PASSPHRASE
    assert derive_passphrase(secret, context="signer:1:2") != PASSPHRASE
    assert derive_passphrase("another secret", context="platform-ca") != PASSPHRASE
    assert len(PASSPHRASE) == 44


def test_signer_certificate_names_person_and_enterprise(ca: PlatformCA, signers: dict[str, SignerIdentity],
                                                        terms: ContractTerms) -> None:
    signer = signers["supplier"]
    cert = signer.certificate
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "李四"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == terms.supplier.name
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == f"NTRCN-{terms.supplier.uscc}"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == hashlib.sha256(b"supplier").hexdigest()
    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)  # raises if the CA did not sign it

    # Chinese-capable names: UTF8String, as encoded on the wire
    rdns = asn1_x509.Certificate.load(signer.cert_der).subject.chosen
    kinds = {attr["type"].native: attr["value"].name for rdn in rdns for attr in rdn}
    assert kinds["common_name"] == kinds["organization_name"] == kinds["organization_identifier"] == "utf8_string"

    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert DOCUMENT_SIGNING_EKU in eku and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.chain_der == (ca.cert_der,)
    assert (signer.common_name, signer.organization) == ("李四", terms.supplier.name)

    # a new key pair per signer
    public = {s.certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
              for s in signers.values()}
    again = ca.issue_signer("李四", "h", terms.supplier.name, terms.supplier.uscc)
    assert len(public) == 3 and again.cert_der not in {s.cert_der for s in signers.values()}
    with pytest.raises(ValueError):
        ca.issue_signer("", "h", "公司", "91310000MA1FL0A1BJ")


def test_signer_key_is_stored_as_encrypted_pkcs12(signers: dict[str, SignerIdentity]) -> None:
    signer = signers["core"]
    passphrase = derive_passphrase("secret", context="signer:7:9")
    blob = signer.to_pkcs12(passphrase)
    assert signer.key_der not in blob
    restored = SignerIdentity.from_pkcs12(blob, passphrase)
    assert restored == signer
    with pytest.raises(SignerKeyError):
        SignerIdentity.from_pkcs12(blob, b"not the passphrase")
    with pytest.raises(ValueError):
        signer.to_pkcs12(b"")
    # plain bytes inside: a worker process can receive it; the CA (with its key) refuses to be pickled
    assert pickle.loads(pickle.dumps(signer)) == signer
    assert "key_der" not in repr(signer)


def test_the_ca_key_does_not_travel_to_workers(ca: PlatformCA) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(ca)


# ---- contract -------------------------------------------------------------------------------------------------


def test_contract_shows_the_terms_in_chinese(contract_pdf: bytes, terms: ContractTerms) -> None:
    assert contract_pdf.startswith(b"%PDF-")
    text = extract_text(contract_pdf)
    compact = re.sub(r"\s+", "", text)
    expected = [
        "应收账款保理合同", terms.contract_no, "第1版", "2025年3月1日",
        terms.funder.name, terms.funder.uscc, terms.supplier.name, terms.supplier.uscc,
        terms.core.name, terms.core.uscc, "保理商/资金方", "债权人/供应商", "债务人/核心企业",
        terms.invoice_no, terms.trade_contract_no,
        "1,500,000.00", "壹佰伍拾万元整", "1,200,000.00", "壹佰贰拾万元整",
        "80.00%", "6.50%", "按实际天数/360计息，计头不计尾", "2025年9月1日",
        "0.30%", "3,600.00", "叁仟陆佰元整",
        "175天", "37,916.67", "叁万柒仟玖佰壹拾陆元陆角柒分",
        "第五百四十六条", "电子签名法", "到期日后3日（宽限期）",
        *(a.name for a in terms.attachments), *(a.sha256 for a in terms.attachments),
        "模板应收账款保理合同2025.1", "共2页",
    ]
    missing = [e for e in expected if re.sub(r"\s+", "", e) not in compact]
    assert missing == []
    values = contract_values(terms)
    assert values["interest_example"].startswith("例如于2025年3月10日放款，计息 175 天")


def test_contract_has_three_empty_visible_signature_fields(contract_pdf: bytes) -> None:
    fields = _sig_fields(contract_pdf)
    assert list(fields) == ["Sig_funder", "Sig_supplier", "Sig_core"]
    reader = PdfFileReader(io.BytesIO(contract_pdf))
    last_page = len(reader.root["/Pages"]["/Kids"]) - 1
    for page, rect, filled in fields.values():
        assert page == last_page and not filled
        assert rect[2] - rect[0] > 100 and rect[3] - rect[1] > 50  # visible, not a hidden field
    # left to right on one row
    xs = [fields[name][1][0] for name in ("Sig_funder", "Sig_supplier", "Sig_core")]
    assert xs == sorted(xs) and len({round(fields[n][1][1]) for n in fields}) == 1
    assert verify(contract_pdf, PlatformCA.generate().cert_pem).summary.startswith("文件没有电子签名")


def test_contract_is_deterministic(contract_pdf: bytes, terms: ContractTerms) -> None:
    again = render_contract(make_terms())
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(contract_pdf).hexdigest()
    revised = render_contract(make_terms(version=2, annual_rate=Decimal("0.06")))
    assert revised != contract_pdf
    assert "第2版" in re.sub(r"\s+", "", extract_text(revised))


def test_contract_without_attachments_or_value_date(terms: ContractTerms) -> None:
    pdf = render_contract(make_terms(attachments=(), value_date=None))
    text = re.sub(r"\s+", "", extract_text(pdf))
    assert "（无附件）" in text and "例如于" not in text
    assert list(_sig_fields(pdf)) == ["Sig_funder", "Sig_supplier", "Sig_core"]


@pytest.mark.parametrize(("change", "message"), [
    ({"financing_amount": 150_000_001}, "exceeds"),
    ({"face_amount": 1.5}, "integer fen"),
    ({"annual_rate": 0.065}, "Decimal"),
    ({"advance_rate": Decimal("1.2")}, "out of range"),
    ({"due_date": date(2025, 3, 1)}, "after issue_date"),
    ({"value_date": date(2025, 9, 1)}, "before due_date"),
    ({"version": 0}, "version"),
    ({"grace_days": -1}, "grace_days"),
    ({"funder": None}, "funder must be a Party"),
    ({"contract_no": " "}, "contract_no"),
])
def test_contract_terms_are_checked(change: dict, message: str | None) -> None:
    with pytest.raises(ContractError) as info:
        make_terms(**change)
    if message:
        assert message in str(info.value)


def test_party_and_attachment_are_checked() -> None:
    with pytest.raises(ContractError):
        Party("某公司", "123")
    with pytest.raises(ContractError):
        Attachment("a.pdf", "ABC")
    with pytest.raises(ContractError):
        make_terms(attachments=(Attachment("a.pdf", "0" * 64), Attachment("a.pdf", "1" * 64)))


def test_template_mistakes_are_reported_with_line_numbers(tmp_path: Path, terms: ContractTerms) -> None:
    template = tmp_path / "t.md"
    template.write_text("---\ntemplate_version: x\n---\n# 合同\n金额 {no_such_value}\n[[signatures]]\n",
                        encoding="utf-8")
    with pytest.raises(ContractError, match=r"line 5: unknown placeholder \{no_such_value\}"):
        render_contract(terms, template=template)
    template.write_text("# 合同\n{contract_no}\n", encoding="utf-8")
    with pytest.raises(ContractError, match="signatures"):
        render_contract(terms, template=template)
    template.write_text("# 合同\n[[nope]]\n[[signatures]]\n", encoding="utf-8")
    with pytest.raises(ContractError, match="unknown block"):
        render_contract(terms, template=template)
    # the shipped template only uses documented placeholders
    assert load_template().placeholders() <= set(contract_values(terms))
    assert load_template().version


def test_fonts_work_without_and_with_a_system_cjk_font(terms: ContractTerms) -> None:
    assert register_cjk_font() == "STSong-Light"
    with pytest.raises(ValueError):
        register_cjk_font("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    with pytest.raises(ValueError):
        register_cjk_font("/nonexistent/font.ttf")
    system = find_system_cjk_font()
    if system is None:
        assert register_cjk_font("auto") == "STSong-Light"
        pytest.skip("no TrueType CJK font installed (fonts-wqy-zenhei); the built-in CID font is used")
    pdf = render_contract(terms, font="auto")
    assert pdf.startswith(b"%PDF-") and b"FontFile2" in pdf
    assert list(_sig_fields(pdf)) == ["Sig_funder", "Sig_supplier", "Sig_core"]


# ---- signing and verification ---------------------------------------------------------------------------------


def test_three_signatures_in_order_all_verify(revisions: list[bytes], ca: PlatformCA, terms: ContractTerms,
                                              signers: dict[str, SignerIdentity]) -> None:
    # incremental: every revision starts with the bytes of the previous one
    for before, after in zip(revisions, revisions[1:], strict=False):
        assert after.startswith(before) and len(after) > len(before)

    for count in range(1, 4):
        report = _timed(f"verify {count} signature(s)", verify, revisions[count], ca)
        assert report.intact and not report.tampered, report.summary
        assert [s.field_name for s in report.signatures] == [SIGNATURE_FIELDS[r] for r in SIGNING_ORDER[:count]]
        assert report.unsigned_fields == tuple(SIGNATURE_FIELDS[r] for r in SIGNING_ORDER[count:])

    report = verify(revisions[-1], ca.cert_pem)
    assert report.summary == "文件完整，3 个签名均有效"
    assert report.sha256 == hashlib.sha256(revisions[-1]).hexdigest()
    for index, (role, sig) in enumerate(zip(SIGNING_ORDER, report.signatures, strict=True)):
        last = index == 2
        assert sig.signer_name == PEOPLE[role]
        assert sig.signer_organization == terms.party(role).name
        assert sig.signer_org_id == f"NTRCN-{terms.party(role).uscc}"
        assert sig.signer_cert_sha256 == signers[role].fingerprint_sha256
        assert sig.signed_at == SIGNED_AT[role]
        assert sig.reason == "同意本合同全部条款"
        assert sig.revision == index + 1
        assert sig.intact and sig.valid and sig.trusted and sig.bottom_line and sig.ok
        assert sig.coverage == ("entire_file" if last else "entire_revision")
        assert sig.modification_level == ("none" if last else "form_filling")
        assert sig.docmdp_ok is True
        assert sig.summary.startswith(f"签名 {SIGNATURE_FIELDS[role]}（{PEOPLE[role]}，") and "有效" in sig.summary
    assert all(filled for _, _, filled in _sig_fields(revisions[-1]).values())


def test_signature_appearance_names_the_signer(signed_pdf: bytes) -> None:
    reader = PdfFileReader(io.BytesIO(signed_pdf))
    field = next(f.get_object() for f in reader.root["/AcroForm"]["/Fields"] if f.get_object()["/T"] == "Sig_core")
    appearance = field["/AP"]["/N"].get_object()
    assert "/EchainSong" in appearance["/Resources"]["/Font"]
    assert "欧阳娜娜".encode("utf-16-be").hex().upper().encode() in appearance.data


def test_signing_refuses_bad_requests(contract_pdf: bytes, signed_pdf: bytes, signers: dict[str, SignerIdentity],
                                      ca: PlatformCA) -> None:
    with pytest.raises(SignError, match="没有签名域"):
        sign(contract_pdf, "Sig_nobody", signers["funder"], ca, reason="x")
    with pytest.raises(SignError, match="已经签署"):
        sign(signed_pdf, "Sig_core", signers["core"], ca, reason="x")
    with pytest.raises(SignError):
        sign(b"not a pdf", "Sig_funder", signers["funder"], ca, reason="x")
    with pytest.raises(ValueError):
        sign(contract_pdf, "Sig_funder", signers["funder"], ca, reason="x",
             signed_at=datetime(2025, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(SignError, match="有效期"):
        sign(contract_pdf, "Sig_funder", signers["funder"], ca, reason="x", signed_at=datetime(2099, 1, 1, tzinfo=UTC))
    with pytest.raises(SignError, match="不是由该平台 CA 签发"):
        sign(contract_pdf, "Sig_funder", signers["funder"], PlatformCA.generate(), reason="x")


def test_signature_by_a_certificate_from_another_ca_is_untrusted(contract_pdf: bytes, other_ca: PlatformCA,
                                                                  ca: PlatformCA, terms: ContractTerms) -> None:
    outsider = other_ca.issue_signer("冒名者", "x", terms.funder.name, terms.funder.uscc)
    pdf = sign(contract_pdf, "Sig_funder", outsider, other_ca, reason="同意")
    report = verify(pdf, ca)
    assert not report.intact and not report.tampered
    sig = report.signatures[0]
    assert sig.intact and sig.valid and not sig.trusted and not sig.bottom_line
    assert "不受信任" in sig.summary and "不受信任" in report.summary
    assert verify(pdf, other_ca).intact  # the same bytes are fine for the CA that issued the certificate


def test_verifying_with_the_wrong_ca_reports_untrusted(signed_pdf: bytes, other_ca: PlatformCA) -> None:
    report = verify(signed_pdf, other_ca.certificate)
    assert not report.intact and not report.tampered
    assert all(s.intact and s.valid and not s.trusted for s in report.signatures)
    assert report.summary.startswith("签名不受信任")


def test_expired_certificates_can_be_checked_at_the_signing_time(signed_pdf: bytes, ca: PlatformCA) -> None:
    later = datetime(2099, 1, 1, tzinfo=UTC)
    assert not verify(signed_pdf, ca, at=later).intact
    assert verify(signed_pdf, ca, at=datetime.now(UTC)).intact


# ---- tampering ------------------------------------------------------------------------------------------------


def test_one_byte_changes_are_detected_where_it_matters(revisions: list[bytes], ca: PlatformCA) -> None:
    contract, signed = revisions[0], revisions[-1]
    ranges = _byte_ranges(signed)
    _, len1, start2, len2 = ranges[-1]
    first_stream = contract.index(b"stream", contract.index(b"/Length")) + 20
    contents = signed[len1:start2]
    letter = len1 + 1 + next(i for i, ch in enumerate(contents[1:]) if chr(ch) in "ABCDEF")
    cases = {
        "first revision, page content": _flip(signed, first_stream),
        "first revision, header": _flip(signed, 3),
        "second signature's /Contents": _flip(signed, ranges[1][1] + 41),
        "last revision, before /Contents": _flip(signed, len1 - 30),
        "last revision, after /Contents": _flip(signed, start2 + len2 // 2),
        "last /Contents, DER": _flip(signed, len1 + 101),
        "last /Contents, certificate set": _flip(signed, len1 + 2 * 300),
        "last /Contents, hex letter case": _flip(signed, letter, 0x20),
        "last /Contents, zero padding": _flip(signed, start2 - 11),
        "last /Contents, padding to whitespace": bytes(signed[:start2 - 11]) + b" " + signed[start2 - 10:],
        "field name of the last signature": _flip(signed, signed.rindex(b"(Sig_core)") + 2, 0x80),
        "field name, case": _flip(signed, signed.rindex(b"(Sig_core)") + 2, 0x20),
        "document catalog reference": _flip(signed, signed.rindex(b"/Root 10 0 R") + 7),
        "trailing %%EOF": _flip(signed, signed.rindex(b"%%EOF") + 3),
        "last byte": _flip(signed, len(signed) - 1),
        "garbage after %%EOF": signed + b"\nappended",
        "newline after %%EOF": signed + b"\n",
    }
    for where, tampered in cases.items():
        assert tampered != signed
        _assert_tampered(tampered, ca, where)


def test_a_byte_flipped_anywhere_is_detected(signed_pdf: bytes, ca: PlatformCA) -> None:
    stride = len(signed_pdf) // 45
    for position in range(7, len(signed_pdf), stride):
        _assert_tampered(_flip(signed_pdf, position), ca, f"byte {position}")


def test_an_incremental_update_after_all_signatures_is_detected(signed_pdf: bytes, ca: PlatformCA) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(signed_pdf))
    overlay = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 30 Tf 100 400 Td (PAID) Tj ET"))
    writer.add_stream_to_page(0, overlay)
    out = io.BytesIO()
    writer.write(out)
    report = verify(out.getvalue(), ca)
    assert not report.intact and report.tampered
    assert report.summary == "文件已被篡改：签名 Sig_core 之后内容被修改"
    assert all(s.intact for s in report.signatures)  # each signed revision is still intact …
    assert report.signatures[-1].coverage == "entire_revision"  # … but the last one no longer covers the file
    assert report.signatures[-1].docmdp_ok is False


def test_a_change_between_two_signatures_names_the_earlier_signature(revisions: list[bytes], ca: PlatformCA,
                                                                      signers: dict[str, SignerIdentity]) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(revisions[2]))
    writer.add_stream_to_page(0, writer.add_object(generic.StreamObject(stream_data=b"0 0 m 100 100 l S")))
    out = io.BytesIO()
    writer.write(out)
    # the core enterprise signs without noticing; its own signature is fine, the earlier ones are not
    pdf = sign(out.getvalue(), "Sig_core", signers["core"], ca, reason="同意")
    report = verify(pdf, ca)
    assert report.tampered and report.summary == "文件已被篡改：签名 Sig_supplier 之后内容被修改"
    assert report.signature("Sig_core").ok


def test_garbage_is_reported_not_raised(ca: PlatformCA) -> None:
    for data in (b"", b"not a pdf at all", b"%PDF-1.7\n%%EOF\n"):
        report = verify(data, ca)
        assert not report.intact and report.tampered
        assert report.error and report.summary == "文件已损坏或被篡改，无法解析其签名"


async def test_cpu_work_runs_off_the_event_loop(signed_pdf: bytes, ca: PlatformCA) -> None:
    with pytest.raises(RuntimeError, match="to_thread"):
        verify(signed_pdf, ca)
    report = await asyncio.to_thread(verify, signed_pdf, ca.cert_pem)
    assert report.intact


def test_sign_and_verify_run_in_a_worker_process(contract_pdf: bytes, signers: dict[str, SignerIdentity],
                                                  ca: PlatformCA) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        signed = pool.submit(sign, contract_pdf, "Sig_funder", signers["funder"], ca.cert_pem, reason="同意").result()
        report = pool.submit(verify, signed, ca.cert_pem).result()
    assert report.intact and report.signatures[0].signer_name == PEOPLE["funder"]


# ---- timings (printed, not asserted) --------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _print_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if TIMINGS:
        capman = request.config.pluginmanager.getplugin("capturemanager")
        line = "  ".join(f"{k}: {v:.0f} ms" for k, v in TIMINGS.items())
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            print(f"\n[signing timings] {line}")  # noqa: T201
