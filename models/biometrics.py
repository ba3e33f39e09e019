"""Face data under PIPL: consent records, encrypted face templates, and the log of verification attempts.

No image is ever stored here. A template holds only the 128-d encoding, AES-GCM encrypted (echain.pii) with
the owner's id in the associated data, so a template copied to another person's row fails to decrypt.
"""

from tortoise import fields
from tortoise.models import Model


class BiometricConsent(Model):
    """A person's separate consent to face processing (PIPL §29); withdrawn consents stay as history."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="biometric_consents", on_delete=fields.CASCADE)
    version = fields.CharField(max_length=32)  # which consent text was shown (biometric.consent.CONSENT_VERSION)
    text_sha256 = fields.CharField(max_length=64)  # digest of that exact text
    granted_at = fields.DatetimeField()
    withdrawn_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "biometric_consents"


class FaceTemplate(Model):
    """The reference a person's selfies are compared with: one approved template is active at a time."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="face_templates", on_delete=fields.CASCADE)
    source = fields.CharField(max_length=20)  # id_card / reference_photo
    document = fields.ForeignKeyField("models.Document", related_name="face_templates", null=True,
                                      on_delete=fields.SET_NULL)  # the ID-card image it was taken from
    encoding_enc = fields.BinaryField()  # PiiCipher.encrypt_bytes(float64[128])
    model = fields.CharField(max_length=48, default="dlib_resnet_v1/5pt")
    approved = fields.BooleanField(default=False, db_index=True)
    approved_by = fields.ForeignKeyField("models.User", related_name="face_templates_approved", null=True,
                                         on_delete=fields.SET_NULL)
    approved_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "face_templates"


class FaceAttempt(Model):
    """One face verification attempt: who, when, how close, and the outcome (never the image)."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="face_attempts", on_delete=fields.CASCADE)
    method = fields.CharField(max_length=16)  # selfie / wechat
    purpose = fields.CharField(max_length=32, default="")
    contract_ref = fields.CharField(max_length=64, default="")
    outcome = fields.CharField(max_length=32, db_index=True)  # success / mismatch / liveness_failed / …
    distance = fields.FloatField(null=True)  # largest frame-to-reference distance
    threshold = fields.FloatField(null=True)
    frames = fields.IntField(default=0)
    detail = fields.JSONField(default=dict)  # per-frame distances and yaws, WeChat verify_ret, timings
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "face_attempts"
