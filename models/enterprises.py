"""Enterprises and the results of their four-element verification."""

from tortoise import fields
from tortoise.models import Model


class Enterprise(Model):
    """A registered enterprise; business roles are flags, onboarding status is its own small machine."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=128)
    uscc = fields.CharField(max_length=18, unique=True)  # unified social credit code, GB 32100-2015
    legal_rep_name = fields.CharField(max_length=64)
    legal_rep_id_enc = fields.TextField()  # AES-GCM token (echain.pii); never the plain number
    legal_rep_id_hash = fields.CharField(max_length=64, db_index=True)  # keyed hash for look-up
    legal_rep_id_masked = fields.CharField(max_length=18)
    contact_name = fields.CharField(max_length=64)
    contact_phone = fields.CharField(max_length=20)
    is_core = fields.BooleanField(default=False)
    is_supplier = fields.BooleanField(default=False)
    is_funder = fields.BooleanField(default=False)
    status = fields.CharField(max_length=20, default="draft", db_index=True)
    kyc_outcome = fields.CharField(max_length=10, default="pending")  # pending / match / mismatch / error
    info_confirmed_at = fields.DatetimeField(null=True)
    submitted_at = fields.DatetimeField(null=True)
    reviewed_at = fields.DatetimeField(null=True)
    reviewed_by = fields.ForeignKeyField("models.User", related_name="reviews", null=True, on_delete=fields.SET_NULL)
    review_reason = fields.CharField(max_length=500, default="")
    version = fields.IntField(default=1)  # optimistic lock: every change bumps it
    created_by = fields.ForeignKeyField("models.User", related_name="enterprises_created", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "enterprises"

    @property
    def business_roles(self) -> list[str]:
        """The business roles chosen, in a fixed order."""
        flags = (("core", self.is_core), ("supplier", self.is_supplier), ("funder", self.is_funder))
        return [name for name, on in flags if on]


class FourElementCheck(Model):
    """One four-element verification attempt and what the provider said."""

    id = fields.BigIntField(primary_key=True)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="kyc_checks", on_delete=fields.CASCADE)
    provider = fields.CharField(max_length=32)
    reference = fields.CharField(max_length=128)
    outcome = fields.CharField(max_length=10)
    detail = fields.CharField(max_length=500, default="")
    checked_at = fields.DatetimeField()

    class Meta:
        table = "four_element_checks"
