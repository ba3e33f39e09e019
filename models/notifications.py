"""Notifications: how many subscribe messages each person allowed, and what was sent to whom."""

from tortoise import fields
from tortoise.models import Model


class SubscribeQuota(Model):
    """Mini-program subscribe messages a person still allows for one template.

    WeChat allows one message per acceptance of wx.requestSubscribeMessage (一次性订阅), so every acceptance
    the mini-program reports adds one, and every send takes one (a conditional update, never below zero).
    """

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="subscribe_quotas", on_delete=fields.CASCADE)
    template_id = fields.CharField(max_length=64)
    remaining = fields.IntField(default=0)
    accepted_total = fields.IntField(default=0)  # every acceptance ever reported (for support questions)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "subscribe_quotas"
        unique_together = (("user", "template_id"),)


class Notification(Model):
    """The outcome of telling one person about one committed transition (one row per event and person)."""

    id = fields.BigIntField(primary_key=True)
    subject = fields.CharField(max_length=64)  # "financing:42"
    version = fields.IntField()  # the subject's version the transition produced
    user = fields.ForeignKeyField("models.User", related_name="notifications", on_delete=fields.CASCADE)
    action = fields.CharField(max_length=32)  # what the person is asked to do
    channel = fields.CharField(max_length=16, default="")  # subscribe / template / "" (none reached)
    # sent / no_channel / failed / maybe_sent (no answer from WeChat: never resent, see notify/delivery.py)
    status = fields.CharField(max_length=16)
    msgid = fields.CharField(max_length=32, null=True)
    errcode = fields.IntField(null=True)
    page = fields.CharField(max_length=256, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notifications"
        unique_together = (("subject", "version", "user"),)
