"""The transactional outbox: every committed financing transition, kept until its notification job is queued."""

from tortoise import fields
from tortoise.models import Model


class OutboxEvent(Model):
    """Written in the transition's own transaction, so a transition can never commit without it.

    The web process queues the notification job right after commit and marks the row; when Redis was down at
    that moment (or the transition came from the scheduler), `notify.outbox.drain` queues it later.
    """

    id = fields.BigIntField(primary_key=True)
    subject = fields.CharField(max_length=64)  # "financing:42"
    version = fields.IntField()  # the subject's version the transition produced
    action = fields.CharField(max_length=32)
    created_at = fields.DatetimeField(auto_now_add=True)
    queued_at = fields.DatetimeField(null=True, db_index=True)  # NULL until the notification job is queued
    # The Idempotency-Key record (echain/idempotency.py) of the request that committed it: a retry whose first
    # answer was lost with a connection finds here that its transition already happened.
    request_key = fields.CharField(max_length=96, null=True, db_index=True)

    class Meta:
        table = "outbox_events"
        unique_together = (("subject", "version"),)
