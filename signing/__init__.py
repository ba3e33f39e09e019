"""Contract PDFs and their electronic signatures (电子签名法 §13): platform CA, per-signer certificates,
the factoring contract, PAdES signing and verification. Pure functions over bytes; see each module."""

from signing.amounts import amount_in_chinese_capital, format_percent, format_yuan
from signing.ca import CAError, PlatformCA, SignerIdentity, SignerKeyError, derive_passphrase
from signing.contract import (
    SIGNATURE_FIELDS,
    SIGNING_ORDER,
    Attachment,
    ContractError,
    ContractTerms,
    Party,
    render_contract,
)
from signing.fonts import BUILTIN_CJK_FONT, register_cjk_font
from signing.pades import SignatureReport, SignError, VerificationReport, sign, verify

__all__ = [
    "BUILTIN_CJK_FONT",
    "SIGNATURE_FIELDS",
    "SIGNING_ORDER",
    "Attachment",
    "CAError",
    "ContractError",
    "ContractTerms",
    "Party",
    "PlatformCA",
    "SignError",
    "SignatureReport",
    "SignerIdentity",
    "SignerKeyError",
    "VerificationReport",
    "amount_in_chinese_capital",
    "derive_passphrase",
    "format_percent",
    "format_yuan",
    "register_cjk_font",
    "render_contract",
    "sign",
    "verify",
]
