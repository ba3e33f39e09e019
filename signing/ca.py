"""The platform CA and the per-signer certificates it issues (电子签名法 §13).

Every signer (one person acting for one enterprise) gets a NEW key pair and a certificate naming both the
person (CN) and the enterprise (O + organizationIdentifier = its unified social credit code). The platform CA
only certifies that binding; it never signs documents itself, and a signer's key signs nothing but that
signer's own signatures.

Key type: EC P-256 with SHA-256 for the CA and for signers (small certificates, ≈1 ms signatures, supported by
pyHanko, Adobe Reader and every PAdES validator). SM2 would be the domestic choice but pyHanko cannot produce it.

Storage (decided here, enforced by the app):
- CA: `ca_cert.pem` (public) and `ca_key.pem` (PKCS#8, encrypted with the passphrase — the app derives it
  from ECHAIN_SECRET_KEY with `derive_passphrase`), file mode 0600, directory 0700.
- Signers: `SignerIdentity.to_pkcs12(passphrase)` — a PKCS#12 (AES-256-CBC, PBKDF2-SHA256, SHA-256 MAC)
  holding the signer's key, certificate and the CA certificate. The app stores it per signer and opens it
  only for a signature the signer has just authorised by passing face verification; the passphrase should be
  derived per signer (`derive_passphrase(secret, context=f"signer:{user_id}:{enterprise_id}")`) so that a
  database dump alone yields no usable key.

Every object here is built from and exports plain bytes, so the CPU-bound work can run in a thread or a
process pool (SignerIdentity is picklable; pass the CA to workers as `ca.cert_pem`, never the CA key).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

CA_CERT_FILE = "ca_cert.pem"
CA_KEY_FILE = "ca_key.pem"
# RFC 9336 id-kp-documentSigning: the purpose our signer certificates are for (and the only one).
DOCUMENT_SIGNING_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_CURVE = ec.SECP256R1()
_PKCS12_KDF_ROUNDS = 100_000
_CREATE_WAIT_SECONDS = 5.0


class CAError(Exception):
    """The CA files are missing, inconsistent, or the passphrase is wrong."""


class SignerKeyError(Exception):
    """A signer's PKCS#12 could not be opened (wrong passphrase or corrupted data)."""


def derive_passphrase(secret: str | bytes, *, context: str) -> bytes:
    """A 256-bit passphrase for one purpose, derived from the master secret with HKDF-SHA256.

    `context` names the purpose ("platform-ca", "signer:<user>:<enterprise>"); different contexts give
    unrelated passphrases. Returned as URL-safe base64 so it is also a valid text password.
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ValueError("secret must not be empty")
    okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"echain-signing-v1", info=context.encode()).derive(raw)
    return base64.urlsafe_b64encode(okm)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_cert(cert: x509.Certificate | bytes | str) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    data = cert.encode() if isinstance(cert, str) else cert
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_ca_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file (one or a bundle); each must be a CA certificate."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CAError("not a PEM certificate file") from exc
    for cert in certs:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise CAError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
    return certs


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _name_value(cert: x509.Certificate, oid: ObjectIdentifier) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(oid)
    if not attrs:
        return None
    value = attrs[0].value
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class SignerIdentity:
    """One signer's certificate and private key (plus the issuing chain), held as DER bytes.

    Treat instances as secret: `key_der` is the unencrypted private key. Persist only `to_pkcs12(...)`.
    """

    cert_der: bytes
    key_der: bytes = field(repr=False)
    chain_der: tuple[bytes, ...] = ()  # issuer certificates, nearest first (our CA)

    def __post_init__(self) -> None:
        if not _same_public_key(self.certificate, self.private_key):
            raise ValueError("certificate and private key do not match")

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.cert_der)

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_der_private_key(self.key_der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("signer keys are EC keys")
        return key

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_der_x509_certificate(c) for c in self.chain_der)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint_sha256(self) -> str:
        """SHA-256 of the certificate (hex): what the app records to recognise this signer's signatures."""
        return hashlib.sha256(self.cert_der).hexdigest()

    @property
    def common_name(self) -> str | None:
        return _name_value(self.certificate, NameOID.COMMON_NAME)

    @property
    def organization(self) -> str | None:
        return _name_value(self.certificate, NameOID.ORGANIZATION_NAME)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def to_pkcs12(self, passphrase: bytes) -> bytes:
        """The key, certificate and chain as an encrypted PKCS#12 (the only form to persist)."""
        if not passphrase:
            raise ValueError("a passphrase is required")
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(_PKCS12_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(passphrase)
        )
        friendly = (self.common_name or "signer").encode()
        return pkcs12.serialize_key_and_certificates(
            friendly, self.private_key, self.certificate, list(self.chain) or None, encryption
        )

    @classmethod
    def from_pkcs12(cls, data: bytes, passphrase: bytes) -> SignerIdentity:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
        except ValueError as exc:
            raise SignerKeyError("无法打开签署人证书：口令错误或数据已损坏") from exc
        if key is None or cert is None or not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SignerKeyError("签署人证书文件缺少私钥或证书")
        der = serialization.Encoding.DER
        return cls(
            cert_der=cert.public_bytes(der),
            key_der=key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            chain_der=tuple(c.public_bytes(der) for c in extra),
        )


class PlatformCA:
    """The platform's root CA: issues one certificate per signer; signs nothing else."""

    def __init__(self, certificate: x509.Certificate, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not _same_public_key(certificate, private_key):
            raise CAError("CA certificate and key do not match")
        self.certificate = certificate
        self._key = private_key

    def __repr__(self) -> str:
        return f"PlatformCA({self.certificate.subject.rfc4514_string()!r})"

    def __reduce__(self):  # noqa: ANN204 - never ship the CA key to another process by accident
        raise TypeError("PlatformCA holds the CA private key; pass ca.cert_pem to workers instead")

    # ---- creation / loading -------------------------------------------------------------------------------

    @staticmethod
    def generate(*, common_name: str = "echain 平台签名根证书", organization: str = "echain",
                 valid_days: int = 7300) -> PlatformCA:
        """A new self-signed root (in memory)."""
        key = ec.generate_private_key(_CURVE)
        name = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return PlatformCA(cert, key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, passphrase: bytes | None) -> PlatformCA:
        """A CA supplied from outside (e.g. an intermediate issued by a real CA)."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=passphrase or None)
        except (ValueError, TypeError) as exc:
            raise CAError("无法解密平台 CA 私钥：口令错误或文件已损坏") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CAError("platform CA key must be an EC key")
        cert = _load_cert(cert_pem)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not basic.ca:
            raise CAError("certificate is not a CA certificate")
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, directory: Path, *, passphrase: bytes, common_name: str = "echain 平台签名根证书",
                       organization: str = "echain") -> PlatformCA:
        """Load the CA from `directory`, creating it on first use (safe against concurrent first starts)."""
        if not passphrase:
            raise CAError("a passphrase is required to protect the CA key")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if not key_path.exists():
            ca = cls.generate(common_name=common_name, organization=organization)
            if ca._publish(directory, passphrase):
                return ca
        return cls._load(key_path, cert_path, passphrase)

    @classmethod
    def _load(cls, key_path: Path, cert_path: Path, passphrase: bytes) -> PlatformCA:
        deadline = time.monotonic() + _CREATE_WAIT_SECONDS
        while not cert_path.exists():  # another process linked the key and is about to publish the cert
            if time.monotonic() > deadline:
                raise CAError(f"{cert_path} is missing although {key_path} exists")
            time.sleep(0.05)
        return cls.from_pem(cert_path.read_bytes(), key_path.read_bytes(), passphrase)

    def _publish(self, directory: Path, passphrase: bytes) -> bool:
        """Write key (0600) then certificate; False if another process created the CA first."""
        key_pem = self.key_pem(passphrase)
        key_tmp = _write_temp(directory, key_pem, 0o600)
        cert_tmp = _write_temp(directory, self.cert_pem, 0o644)
        try:
            try:
                os.link(key_tmp, directory / CA_KEY_FILE)  # atomic and exclusive: only one creator wins
            except FileExistsError:
                return False
            os.replace(cert_tmp, directory / CA_CERT_FILE)
            return True
        finally:
            for tmp in (key_tmp, cert_tmp):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def issued(self, cert: x509.Certificate) -> bool:
        """True when this CA signed `cert` (a signer certificate from before a CA rotation is not)."""
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    # ---- exports ------------------------------------------------------------------------------------------

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def key_pem(self, passphrase: bytes) -> bytes:
        """The CA key as encrypted PKCS#8 PEM."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    # ---- issuing ------------------------------------------------------------------------------------------

    def issue_signer(self, person_name: str, person_id_hash: str, enterprise_name: str, uscc: str, *,
                     valid_days: int = 3650) -> SignerIdentity:
        """A new key pair and certificate for one person signing for one enterprise.

        Subject: C=CN, O=<enterprise>, organizationIdentifier=NTRCN-<USCC> (ETSI EN 319 412-1 form),
        CN=<person>, serialNumber=<person_id_hash> — a pseudonymous hash, never the ID number itself, since the
        certificate travels inside every signed PDF. All strings are UTF8String, so Chinese names work.
        """
        for label, value in (("person_name", person_name), ("person_id_hash", person_id_hash),
                             ("enterprise_name", enterprise_name), ("uscc", uscc)):
            if not value or not value.strip():
                raise ValueError(f"{label} must not be empty")
        key = ec.generate_private_key(_CURVE)
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, enterprise_name.strip()),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{uscc.strip()}"),
            x509.NameAttribute(NameOID.COMMON_NAME, person_name.strip()),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, person_id_hash.strip()),
        ])
        now = _now()
        not_after = min(now + dt.timedelta(days=valid_days), self.certificate.not_valid_after_utc)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING_EKU, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        der = serialization.Encoding.DER
        return SignerIdentity(
            cert_der=cert.public_bytes(der),
            key_der=key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            chain_der=(self.cert_der,),
        )


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` beside `path`, then rename it over `path`: a crash leaves the old file or the new one."""
    tmp = _write_temp(path.parent, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_temp(directory: Path, data: bytes, mode: int) -> str:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-ca-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp
