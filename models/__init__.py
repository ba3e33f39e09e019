"""Tortoise models only; no behaviour beyond small derived properties."""

# Every module holding models; the ORM config and migrations read this list.
MODEL_MODULES = [
    "models.people",
    "models.enterprises",
    "models.documents",
    "models.ledger",
    "models.financing",
    "models.biometrics",
    "models.wechat_links",
    "models.notifications",
    "models.attorney",
    "models.outbox",
    "models.console_accounts",
]
