"""Financings (factoring applications) and every row their lifecycle writes.

Money is integer fen (BigInt) everywhere; rates are exact decimal fractions (0.065000 = 6.5 % a year) in
DecimalField(max_digits=7, decimal_places=6), never floats. Unique constraints back the use cases' conditional
updates, so even a bug in application logic cannot disburse, repay or win a financing twice.
"""

from tortoise import fields
from tortoise.models import Model

_RATE = {"max_digits": 7, "decimal_places": 6}


class Financing(Model):
    """One receivable offered for factoring, from submission to repayment."""

    id = fields.BigIntField(primary_key=True)
    supplier = fields.ForeignKeyField("models.Enterprise", related_name="financings_supplied", on_delete=fields.RESTRICT)
    core = fields.ForeignKeyField("models.Enterprise", related_name="financings_owed", on_delete=fields.RESTRICT)
    # The winning subscriber; set by the conditional update that moves "allocated" → "subscribed".
    funder = fields.ForeignKeyField("models.Enterprise", related_name="financings_funded", null=True,
                                    on_delete=fields.RESTRICT)
    status = fields.CharField(max_length=24, default="submitted", db_index=True)
    version = fields.IntField(default=1)  # optimistic lock: every transition filters on it and bumps it
    invoice_no = fields.CharField(max_length=64)
    contract_no = fields.CharField(max_length=64)  # the trade contract behind the receivable
    face_amount = fields.BigIntField()  # receivable face value, fen
    requested_amount = fields.BigIntField()  # what the supplier asks for, fen
    due_date = fields.DateField()
    # Confirmation (确权): the quorum is fixed when the core enterprise claims, so a policy edited later
    # never changes the rules for a financing already under approval.
    approvals_required = fields.IntField(null=True)
    approval_count = fields.IntField(default=0)
    rejection_reason = fields.CharField(max_length=500, default="")
    withdrawal_reason = fields.CharField(max_length=500, default="")
    # Terms fixed by the platform when it issues the contract.
    annual_rate = fields.DecimalField(null=True, **_RATE)
    advance_rate = fields.DecimalField(null=True, **_RATE)
    financing_amount = fields.BigIntField(null=True)
    fee_rate = fields.DecimalField(null=True, **_RATE)
    fee_amount = fields.BigIntField(null=True)
    contract_version = fields.IntField(default=0)  # 0 until a contract is issued
    signature_count = fields.IntField(default=0)  # valid signatures on the current contract version
    signed_at = fields.DatetimeField(null=True)
    # Disbursement and what the quote said at that moment.
    disbursed_amount = fields.BigIntField(null=True)
    disbursed_at = fields.DatetimeField(null=True)
    bank_reference = fields.CharField(max_length=64, null=True)
    voucher = fields.ForeignKeyField("models.Document", related_name="vouchered_financings", null=True,
                                     on_delete=fields.RESTRICT)
    interest_days = fields.IntField(null=True)
    interest_amount = fields.BigIntField(null=True)
    total_due = fields.BigIntField(null=True)  # principal + interest + fee, fen
    received_at = fields.DatetimeField(null=True)
    overdue_at = fields.DatetimeField(null=True)
    repayment_reported_amount = fields.BigIntField(null=True)
    repayment_reported_at = fields.DatetimeField(null=True)
    repaid_at = fields.DatetimeField(null=True)
    created_by = fields.ForeignKeyField("models.User", related_name="financings_created", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)  # conditional updates set it explicitly

    class Meta:
        table = "financings"


class FinancedInvoice(Model):
    """One supplier invoice tied to the financing that uses it: the same invoice can never back two.

    Released (deleted) when that financing is withdrawn or rejected, kept for ever otherwise.
    """

    id = fields.BigIntField(primary_key=True)
    supplier = fields.ForeignKeyField("models.Enterprise", related_name="financed_invoices", on_delete=fields.RESTRICT)
    invoice_no = fields.CharField(max_length=64)
    financing = fields.OneToOneField("models.Financing", related_name="invoice_lock", on_delete=fields.CASCADE)

    class Meta:
        table = "financed_invoices"
        unique_together = (("supplier", "invoice_no"),)


class FinancingAttachment(Model):
    """A document attached to a financing; parties of the financing may download it."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.ForeignKeyField("models.Financing", related_name="attachments", on_delete=fields.CASCADE)
    document = fields.ForeignKeyField("models.Document", related_name="financing_uses", on_delete=fields.RESTRICT)
    purpose = fields.CharField(max_length=16)  # material / contract / voucher / repayment
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "financing_attachments"
        unique_together = (("financing", "document", "purpose"),)


class FinancingApproval(Model):
    """One core-enterprise decision during confirmation (确权); one approval per person."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.ForeignKeyField("models.Financing", related_name="approvals", on_delete=fields.CASCADE)
    approver = fields.ForeignKeyField("models.User", related_name="financing_decisions", on_delete=fields.RESTRICT)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="financing_decisions",
                                        on_delete=fields.RESTRICT)
    decision = fields.CharField(max_length=8)  # approve / reject
    comment = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "financing_approvals"
        # A financing is claimed once and never re-enters approval, so no round number is needed: the same
        # person approving twice is a unique violation, which is what makes the quorum count distinct people.
        unique_together = (("financing", "approver", "decision"),)


class ApprovalPolicy(Model):
    """How many distinct approvers a core enterprise needs, by face amount.

    tiers: [{"up_to_fen": int | None, "approvers": int}, …] ascending; the last tier has up_to_fen None.
    """

    id = fields.BigIntField(primary_key=True)
    enterprise = fields.OneToOneField("models.Enterprise", related_name="approval_policy", on_delete=fields.CASCADE)
    tiers = fields.JSONField()
    updated_by = fields.ForeignKeyField("models.User", related_name="approval_policies_set", on_delete=fields.RESTRICT)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "approval_policies"


class Allocation(Model):
    """The platform offering a confirmed financing to one funder."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.ForeignKeyField("models.Financing", related_name="allocations", on_delete=fields.CASCADE)
    funder = fields.ForeignKeyField("models.Enterprise", related_name="allocations", on_delete=fields.RESTRICT)
    status = fields.CharField(max_length=10, default="allocated")  # allocated / declined / won / lost
    # Equals financing_id on the winning row and NULL elsewhere: unique, so the database itself refuses a
    # second winner (NULLs never collide, on SQLite and PostgreSQL alike).
    winner_of = fields.BigIntField(null=True, unique=True)
    decline_reason = fields.CharField(max_length=500, default="")
    allocated_by = fields.ForeignKeyField("models.User", related_name="allocations_made", on_delete=fields.RESTRICT)
    allocated_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "allocations"
        unique_together = (("financing", "funder"),)


class Contract(Model):
    """One version of the factoring contract; revising voids it and issues the next version."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.ForeignKeyField("models.Financing", related_name="contracts", on_delete=fields.CASCADE)
    version = fields.IntField()
    terms = fields.JSONField()  # the agreed terms, amounts as fen, rates as decimal strings
    sha256 = fields.CharField(max_length=64)  # of the current PDF revision (the unsigned PDF, then each signed one)
    document = fields.ForeignKeyField("models.Document", related_name="contract_versions", null=True,
                                      on_delete=fields.RESTRICT)  # the current PDF revision
    issued_by = fields.ForeignKeyField("models.User", related_name="contracts_issued", on_delete=fields.RESTRICT)
    issued_at = fields.DatetimeField()
    voided_at = fields.DatetimeField(null=True)
    void_reason = fields.CharField(max_length=500, default="")

    class Meta:
        table = "contracts"
        unique_together = (("financing", "version"),)


class Signature(Model):
    """One party's signature on one contract version."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.ForeignKeyField("models.Financing", related_name="signatures", on_delete=fields.CASCADE)
    contract_version = fields.IntField()
    contract_sha256 = fields.CharField(max_length=64)  # of the PDF revision this signature produced
    signed_over_sha256 = fields.CharField(max_length=64, default="")  # of the PDF revision it was applied to
    document = fields.ForeignKeyField("models.Document", related_name="signature_revisions", null=True,
                                      on_delete=fields.RESTRICT)  # the PDF revision this signature produced
    party = fields.CharField(max_length=10)  # funder / supplier / core
    authority = fields.CharField(max_length=10, default="legal_rep")  # legal_rep / agent
    power_of_attorney_id = fields.BigIntField(null=True)  # the power an agent signed under
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="signatures", on_delete=fields.RESTRICT)
    signer = fields.ForeignKeyField("models.User", related_name="signatures", on_delete=fields.RESTRICT)
    signed_at = fields.DatetimeField()
    voided = fields.BooleanField(default=False)

    class Meta:
        table = "signatures"
        unique_together = (("financing", "contract_version", "party"),)


class SignerCredential(Model):
    """One signer's certificate (one person signing for one enterprise), issued by the platform CA on the first
    signature. The private key is kept only inside `pkcs12`, encrypted with a passphrase derived per signer
    from the master secret (a database dump alone yields no usable key)."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="signer_credentials", on_delete=fields.RESTRICT)
    enterprise = fields.ForeignKeyField("models.Enterprise", related_name="signer_credentials",
                                        on_delete=fields.RESTRICT)
    cert_sha256 = fields.CharField(max_length=64, unique=True)
    cert_pem = fields.TextField()
    pkcs12 = fields.BinaryField()
    not_after = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "signer_credentials"
        unique_together = (("user", "enterprise"),)


class Disbursement(Model):
    """The funder's payment to the supplier; at most one per financing, enforced by the database."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.OneToOneField("models.Financing", related_name="disbursement", on_delete=fields.RESTRICT)
    funder = fields.ForeignKeyField("models.Enterprise", related_name="disbursements", on_delete=fields.RESTRICT)
    amount = fields.BigIntField()
    bank_reference = fields.CharField(max_length=64)
    disbursed_at = fields.DatetimeField()
    voucher = fields.ForeignKeyField("models.Document", related_name="disbursements", on_delete=fields.RESTRICT)
    recorded_by = fields.ForeignKeyField("models.User", related_name="disbursements_recorded", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "disbursements"


class Repayment(Model):
    """The core enterprise's payment at maturity; at most one per financing, enforced by the database."""

    id = fields.BigIntField(primary_key=True)
    financing = fields.OneToOneField("models.Financing", related_name="repayment", on_delete=fields.RESTRICT)
    amount = fields.BigIntField()
    amount_due = fields.BigIntField()  # what the quote said was due, kept beside what was paid
    paid_at = fields.DatetimeField()
    proof = fields.ForeignKeyField("models.Document", related_name="repayments", null=True, on_delete=fields.RESTRICT)
    reported_by = fields.ForeignKeyField("models.User", related_name="repayments_reported", on_delete=fields.RESTRICT)
    reported_at = fields.DatetimeField()
    confirmed_by = fields.ForeignKeyField("models.User", related_name="repayments_confirmed", null=True,
                                          on_delete=fields.RESTRICT)
    confirmed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "repayments"
