"""Links between Official Account followers and mini-program accounts."""

from tortoise import fields
from tortoise.models import Model


class WeChatLink(Model):
    """One Official Account follower (OA openid) linked to one person (their mini-program account)."""

    id = fields.BigIntField(primary_key=True)
    # openids are per account: the OA openid differs from User.openid (the mini-program one).
    oa_openid = fields.CharField(max_length=64, unique=True)
    user = fields.OneToOneField("models.User", related_name="wechat_link", on_delete=fields.CASCADE)
    via = fields.CharField(max_length=16)  # "unionid" or "code": how the link was proved
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "wechat_links"
