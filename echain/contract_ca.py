"""The platform signing CA, as configured: your own (ECHAIN_CA_CERT_FILE + ECHAIN_CA_KEY_FILE) or one created
on first run under <data dir>/ca, its key encrypted with a passphrase derived from ECHAIN_SECRET_KEY.

Verification trusts that CA plus the earlier ones named in ECHAIN_CA_TRUSTED_CERTS (after a CA rotation, the
contracts signed before it must still verify); only the current CA ever issues signer certificates."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from echain.settings import Settings, SettingsError
from signing import PlatformCA, derive_passphrase
from signing.ca import CA_CERT_FILE, CAError, load_ca_certificates


def ca_passphrase(settings: Settings) -> bytes:
    """The CA key's passphrase: configured, or derived from the master secret."""
    if settings.ca_key_passphrase:
        return settings.ca_key_passphrase.encode()
    if not settings.secret_key:
        raise SettingsError("ECHAIN_SECRET_KEY is required to protect the platform CA key")
    return derive_passphrase(settings.secret_key, context="platform-ca")


def _configured(settings: Settings) -> bool:
    if bool(settings.ca_cert_file) != bool(settings.ca_key_file):
        raise SettingsError("ECHAIN_CA_CERT_FILE and ECHAIN_CA_KEY_FILE must be set together")
    return bool(settings.ca_cert_file)


def load_platform_ca(settings: Settings) -> PlatformCA:
    """The CA with its key (blocking: run it in a thread from async code)."""
    if _configured(settings):
        cert, key = Path(settings.ca_cert_file).read_bytes(), Path(settings.ca_key_file).read_bytes()
        return PlatformCA.from_pem(cert, key, ca_passphrase(settings))
    return PlatformCA.load_or_create(settings.data_dir / "ca", passphrase=ca_passphrase(settings))


def ca_certificate_pem(settings: Settings) -> bytes:
    """Only the CA certificate (what verification needs); no passphrase involved."""
    if _configured(settings):
        return Path(settings.ca_cert_file).read_bytes()
    path = settings.data_dir / "ca" / CA_CERT_FILE
    if not path.exists():
        raise SettingsError(f"platform CA certificate not found at {path}: the service creates it on first start")
    return path.read_bytes()


def earlier_ca_pems(settings: Settings) -> tuple[bytes, ...]:
    """The certificates of earlier platform CAs (ECHAIN_CA_TRUSTED_CERTS; a file may hold several), one PEM each,
    every one checked to be a CA certificate."""
    pems: list[bytes] = []
    for name in settings.ca_trusted_certs:
        try:
            certs = load_ca_certificates(Path(name).read_bytes())
        except (OSError, CAError) as exc:
            raise SettingsError(f"ECHAIN_CA_TRUSTED_CERTS: cannot use {name}: {exc}") from exc
        pems.extend(c.public_bytes(Encoding.PEM) for c in certs)
    return tuple(pems)


def trusted_ca_pems(settings: Settings) -> tuple[bytes, ...]:
    """The trust roots for verifying contracts: the current CA certificate first, then the earlier ones."""
    return (ca_certificate_pem(settings), *earlier_ca_pems(settings))
