"""Uploaded documents: metadata here, bytes in content-addressed storage."""

from tortoise import fields
from tortoise.models import Model


class Document(Model):
    """A file an enterprise uploaded (licence, ID card sides, other material)."""

    id = fields.BigIntField(primary_key=True)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="documents", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=32)
    sha256 = fields.CharField(max_length=64, db_index=True)
    content_type = fields.CharField(max_length=64)
    size = fields.BigIntField()
    filename = fields.CharField(max_length=255, default="")
    uploaded_by = fields.ForeignKeyField("models.User", related_name="uploads", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "documents"
