"""The platform signing CA, as configured: your own (ECHAIN_CA_CERT_FILE + ECHAIN_CA_KEY_FILE) or one created
on first run under <data dir>/ca, its key encrypted with a passphrase derived from ECHAIN_SECRET_KEY."""

from __future__ import annotations

from pathlib import Path

from echain.settings import Settings, SettingsError
from signing import PlatformCA, derive_passphrase
from signing.ca import CA_CERT_FILE


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
