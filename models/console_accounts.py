"""Operator console credentials: a username and an argon2id hash, tied to one platform-operator person."""

from tortoise import fields
from tortoise.models import Model


class ConsoleAccount(Model):
    """How one platform operator logs in to the web console (the person is a `User` with is_platform_operator).

    The use cases authorise the console operator through `user`, exactly as they authorise the API's operator;
    this row only holds what the browser login needs.
    """

    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=32, unique=True)  # lower case (workflow.console_accounts.normalise)
    password_hash = fields.CharField(max_length=255)  # argon2id, PHC string (argon2-cffi PasswordHasher)
    user = fields.OneToOneField("models.User", related_name="console_account", on_delete=fields.CASCADE)
    created_at = fields.DatetimeField(auto_now_add=True)
    password_changed_at = fields.DatetimeField()
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "console_accounts"
