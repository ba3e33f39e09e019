"""The tamper-evident hash chain of every state change."""

from tortoise import fields
from tortoise.models import Model


class LedgerEntry(Model):
    """One link: its hash covers the previous hash and everything recorded here."""

    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(unique=True)
    prev_hash = fields.CharField(max_length=64, unique=True)  # unique: two entries can never share a parent
    hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    actor = fields.CharField(max_length=64)  # "user:<id>", "system", "platform"
    subject = fields.CharField(max_length=64, db_index=True)  # "enterprise:<id>", "financing:<id>"
    action = fields.CharField(max_length=64)
    payload = fields.JSONField()
    payload_digest = fields.CharField(max_length=64)

    class Meta:
        table = "ledger_entries"


class LedgerHead(Model):
    """The single row naming the chain's tip; appends advance it with a conditional update."""

    id = fields.IntField(primary_key=True)
    seq = fields.BigIntField(default=0)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "ledger_head"
