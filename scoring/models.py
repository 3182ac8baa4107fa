"""The ORM models of the scoring service (Django). Not to be confused with the
top-level ``models`` package, which holds the pure PyTorch/numpy credit models.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from models.families import family_choices, family_of


class Portfolio(models.Model):
    """Portfolio: a book of applicants and the unit of access control. An analyst is
    granted portfolios, never single applicants; every applicant-level table carries
    ``portfolio_id`` so reads are filtered by an indexed ``portfolio_id IN (...)``.

    The points scaling and decision cutoffs live here because they are a credit
    policy of the book, not a property of any one model.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    schema = models.ForeignKey(
        "DatasetSchema",
        on_delete=models.PROTECT,
        related_name="portfolios",
        help_text="The schema new applicant files of this portfolio are validated against.",
    )
    is_active = models.BooleanField(default=True, help_text="Active portfolios are rescored nightly.")
    # Points scaling: score = offset - factor * ln(odds of default); default 600 points at 50:1 good:bad, 20 PDO.
    base_score = models.FloatField(default=600.0)
    base_odds = models.FloatField(
        default=50.0, validators=[MinValueValidator(1e-9)], help_text="good:bad odds at the base score"
    )
    pdo = models.FloatField(default=20.0, validators=[MinValueValidator(1e-9)], help_text="points to double the odds")
    challenger_version = models.ForeignKey(
        "ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="An approved model that shadow-scores the nightly run beside the champion.",
    )
    approve_min_score = models.FloatField(default=560.0, help_text="scores at or above this are approved")
    decline_below_score = models.FloatField(
        default=530.0, help_text="scores below this are declined; between, referred"
    )
    # The scale and cutoffs above are the portfolio's first policy and, after that, a copy of
    # the policy in force written by scoring.services.policy; decisions read ``policy_version``.
    policy_version = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.RESTRICT, related_name="+",
        help_text="the approved credit policy in force (change it by proposing a new version)",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_portfolio_data", "View the applicants and scores of the portfolio"),
            ("score_portfolio", "Score applicants of the portfolio"),
            ("import_portfolio", "Import data into the portfolio"),
            ("export_portfolio", "Export data of the portfolio"),
            ("train_portfolio", "Train and tune models of the portfolio"),
            ("validate_portfolio", "Approve and promote models of the portfolio"),
            ("view_portfolio_pii", "See the unmasked personal data of the portfolio's applicants"),
            ("manage_portfolio_policy", "Propose and approve the credit policy of the portfolio"),
            ("review_portfolio", "Decide referred applications of the portfolio"),
        ]

    def __str__(self) -> str:
        return self.name


class DatasetSchema(models.Model):
    """DatasetSchema: a declared, versioned description of an applicant file. Each
    column has a role (id, numeric, categorical, pii, protected, target, ignore), a
    type and its allowed range or categories. A dataset with other columns is
    imported by declaring a new schema; no code changes. A version, once used, is
    never edited: a change is a new version.
    """

    ROLE_ID = "id"
    ROLE_NUMERIC = "numeric"
    ROLE_CATEGORICAL = "categorical"
    ROLE_PII = "pii"
    ROLE_PROTECTED = "protected"
    ROLE_TARGET = "target"
    ROLE_IGNORE = "ignore"
    ROLES = [ROLE_ID, ROLE_NUMERIC, ROLE_CATEGORICAL, ROLE_PII, ROLE_PROTECTED, ROLE_TARGET, ROLE_IGNORE]

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    definition = models.JSONField(help_text="The validated schema document (columns, roles, types, ranges).")
    sha256 = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="uniq_schema_name_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs) -> None:
        self.sha256 = self.digest(self.definition)
        super().save(*args, **kwargs)

    @staticmethod
    def digest(definition: dict) -> str:
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()

    def columns_with_role(self, *roles: str) -> list[dict]:
        return [c for c in self.definition["columns"] if c["role"] in roles]


class Applicant(models.Model):
    """Applicant: one person applying for credit in one portfolio, known by the
    lender's external id (unique within the portfolio). ``features`` holds the model
    inputs declared by the schema; protected attributes are kept in their own field
    and are never model inputs; PII lives in :class:`ApplicantPII`, a separate table.
    """

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="applicants")
    external_id = models.CharField(max_length=100)
    schema = models.ForeignKey(DatasetSchema, on_delete=models.PROTECT, related_name="+")
    features = models.JSONField(default=dict)
    protected_attributes = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portfolio_id", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "external_id"], name="uniq_applicant_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.portfolio_id})"


class ApplicantPII(models.Model):
    """ApplicantPII: the personal data of an applicant (name, national id, contact,
    date of birth), kept apart from model features so it can be protected, masked
    and erased on its own. Never read by a model.

    Stored encrypted only: ``ciphertext`` is the Fernet token (AES-128-CBC +
    HMAC-SHA256) of the JSON of the PII columns, under the newest key of
    ``PII_ENCRYPTION_KEYS``; ``fingerprint`` is a keyed hash of the same JSON, so
    an import can tell changed PII from unchanged without decrypting. Read it
    through ``scoring.services.pii`` (``pii_read``/``pii_view``), never directly.
    """

    applicant = models.OneToOneField(Applicant, on_delete=models.CASCADE, related_name="pii", primary_key=True)
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="+")
    ciphertext = models.TextField()
    fingerprint = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "applicant PII"
        verbose_name_plural = "applicant PII"

    def __str__(self) -> str:
        return f"PII of applicant {self.applicant_id}"


class RepaymentMonth(models.Model):
    """RepaymentMonth: one month of an applicant's repayment history (the sequence
    the CNN reads). Amounts are floats, not decimals: they are model inputs read by
    the million, not a ledger.
    """

    # Denormalised from the applicant (reads restrict by portfolio without a join). No
    # database FK: checking it costs every one of millions of history inserts, and the only
    # writer (bulk.history_upsert) takes it from applicants looked up in that portfolio;
    # Django still cascades a portfolio's deletion (integrity: tests/scoring/test_ingestion_history.py).
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    # No index of its own: the unique (applicant, month) constraint's index serves
    # lookups by applicant, and a second index costs every one of millions of inserts.
    # No database FK either: its check runs once per inserted row; statement-level
    # triggers check and lock each referenced applicant once per statement and cascade
    # deletes (migration 0024; integrity: tests/scoring/test_ingestion_history.py).
    applicant = models.ForeignKey(
        Applicant, on_delete=models.CASCADE, related_name="history", db_index=False, db_constraint=False
    )
    month = models.DateField(help_text="First day of the month.")
    balance = models.FloatField()
    amount_paid = models.FloatField()
    days_past_due = models.PositiveIntegerField()

    class Meta:
        ordering = ["applicant_id", "month"]
        constraints = [models.UniqueConstraint(fields=["applicant", "month"], name="uniq_repayment_month")]

    def __str__(self) -> str:
        return f"{self.applicant_id} {self.month:%Y-%m}: {self.days_past_due} dpd"


class Outcome(models.Model):
    """Outcome: whether an applicant defaulted, as observed on a date. Several
    observations of one applicant are kept (cohort backtests need them)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="+")
    applicant = models.ForeignKey(
        Applicant, on_delete=models.CASCADE, related_name="outcomes", db_index=False
    )  # see RepaymentMonth
    defaulted = models.BooleanField()
    observed_on = models.DateField()

    class Meta:
        ordering = ["applicant_id", "observed_on"]
        constraints = [models.UniqueConstraint(fields=["applicant", "observed_on"], name="uniq_outcome_observation")]

    def __str__(self) -> str:
        return f"{self.applicant_id} {'defaulted' if self.defaulted else 'performing'} on {self.observed_on}"


class ImportJob(models.Model):
    """ImportJob: one attempt to load a file into a portfolio, with its validation
    report. A rejected job wrote nothing; with ``valid_only`` the valid rows were
    written and the report lists the others."""

    KIND_APPLICANTS = "applicants"
    KIND_HISTORY = "history"
    KIND_OUTCOMES = "outcomes"
    KIND_CHOICES = [(KIND_APPLICANTS, "Applicants"), (KIND_HISTORY, "Repayment history"), (KIND_OUTCOMES, "Outcomes")]

    STATUS_PENDING = "pending"
    STATUS_RUNNING = "running"
    STATUS_SUCCEEDED = "succeeded"
    STATUS_REJECTED = "rejected"
    STATUS_FAILED = "failed"
    STATUS_CHOICES = [
        (STATUS_PENDING, "Pending"),
        (STATUS_RUNNING, "Running"),
        (STATUS_SUCCEEDED, "Succeeded"),
        (STATUS_REJECTED, "Rejected: invalid rows, nothing written"),
        (STATUS_FAILED, "Failed"),
    ]

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    schema = models.ForeignKey(DatasetSchema, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64, blank=True)
    file_size = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    valid_only = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=STATUS_PENDING, db_index=True)
    rows_total = models.BigIntegerField(default=0)
    rows_valid = models.BigIntegerField(default=0)
    rows_invalid = models.BigIntegerField(default=0)
    rows_created = models.BigIntegerField(default=0)
    rows_updated = models.BigIntegerField(default=0)
    rows_unchanged = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0, help_text="All problems found; the report keeps the first ones.")
    errors = models.JSONField(default=list, blank=True, help_text="[{row, column, value, message}], capped")
    warning_count = models.BigIntegerField(default=0, help_text="Cells accepted with a change (unseen -> other).")
    summary = models.JSONField(
        default=list,
        blank=True,
        help_text="[{severity, column, problem, count, examples: [{row, value}]}] over the whole file, never capped",
    )
    message = models.TextField(blank=True)
    # The file a retry reads again (a path or a storage name); empty when it is gone.
    source = models.CharField(max_length=1000, blank=True)
    # The lease of the process running it: renewed while it runs, so the supervisor can
    # tell a running import from one whose process is gone (scoring.services.supervisor).
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} import #{self.pk} into {self.portfolio_id}: {self.status}"


class ModelVersion(models.Model):
    """ModelVersion: one trained credit model of a portfolio, with everything a
    validator needs to reproduce and judge it: the schema version, a fingerprint of
    the exact rows used, hyper-parameters, seed, code version, device, metrics on
    each split beside the logistic-regression baseline, and the SHA-256 of its
    artifact. Status moves training → trained → approved → champion → retired; at
    most one champion per portfolio. A validator may reject a version instead, with a
    reason: rejected is final, nothing approves, promotes or restores it afterwards.
    """

    # The kinds are the registered model families (models.families); callers ask the
    # family (``version.family``) what it needs instead of comparing kind strings.
    KIND_MLP = "mlp"
    KIND_CNN = "cnn"
    KIND_CHOICES = family_choices()

    STATUS_QUEUED = "queued"
    STATUS_TRAINING = "training"
    STATUS_FAILED = "failed"
    STATUS_TRAINED = "trained"
    STATUS_APPROVED = "approved"
    STATUS_CHAMPION = "champion"
    STATUS_RETIRED = "retired"
    STATUS_REJECTED = "rejected"
    STATUS_CHOICES = [
        (STATUS_QUEUED, "Queued"),
        (STATUS_TRAINING, "Training"),
        (STATUS_FAILED, "Failed"),
        (STATUS_TRAINED, "Trained"),
        (STATUS_APPROVED, "Approved"),
        (STATUS_CHAMPION, "Champion"),
        (STATUS_RETIRED, "Retired"),
        (STATUS_REJECTED, "Rejected"),
    ]

    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, related_name="model_versions")
    version = models.PositiveIntegerField(help_text="Sequence number within the portfolio.")
    kind = models.CharField(max_length=10, choices=family_choices)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=STATUS_QUEUED, db_index=True)
    schema = models.ForeignKey(DatasetSchema, on_delete=models.PROTECT, related_name="+")
    hyperparameters = models.JSONField(default=dict)
    seed = models.IntegerField(default=0)
    training_data_fingerprint = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the exact rows used")
    training_rows = models.BigIntegerField(default=0)
    code_version = models.CharField(max_length=100, blank=True)
    device = models.CharField(max_length=50, blank=True)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="{train, validation, test}: AUC, Gini, KS, Brier, ..."
    )
    baseline_metrics = models.JSONField(default=dict, blank=True, help_text="logistic regression on the same split")
    progress = models.JSONField(default=dict, blank=True, help_text="epoch, max_epochs, train_loss, val_auc, history")
    validations = models.JSONField(
        default=dict,
        blank=True,
        help_text="each split scheme (stratified; out_of_time when the schema dates applications): "
        "its test metrics beside the baseline's, its rows and dates, and which one the model was trained on",
    )
    screen = models.JSONField(
        default=dict,
        blank=True,
        help_text="the leakage and sanity screen at training time (models/screen.py): flagged features and why",
    )
    artifact_name = models.CharField(
        max_length=500, blank=True, help_text="the model file's name in the artifacts storage (scoring/storage.py)"
    )
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    background_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the explainer's reference sample (artifact name + .background.npz)",
    )
    error = models.TextField(blank=True)
    tuning_study = models.ForeignKey("TuningStudy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # One training request for several families: its versions share the seed and the
    # split, so the leaderboard sets them side by side on the same rows.
    training_group = models.UUIDField(
        null=True, blank=True, db_index=True, help_text="versions trained by one request, on the same split"
    )
    trained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    monitoring_reference = models.JSONField(
        default=dict,
        blank=True,
        help_text="bin edges and shares of the score and each feature on the training sample (PSI/CSI reference)",
    )
    promotion_override_reason = models.TextField(
        blank=True, help_text="why a validator promoted despite a failed stability or fairness report"
    )
    promotion_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promotion_override_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True, help_text="why a validator rejected this version")
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    # The lease of the worker training it (see ImportJob.worker).
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Facts a registry step adds to its audit event (set by the step on the row it returns, never stored).
    audit_details: dict

    class Meta:
        ordering = ["portfolio_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "version"], name="uniq_model_version"),
            models.UniqueConstraint(
                fields=["portfolio"], condition=models.Q(status="champion"), name="one_champion_per_portfolio"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.portfolio_id}/{self.kind} v{self.version} ({self.status})"

    @property
    def family(self):
        """The model family (``models.families.Family``) of this version's kind."""
        return family_of(self.kind)

    @property
    def is_champion(self) -> bool:
        return self.status == self.STATUS_CHAMPION

    @property
    def screen_findings(self) -> list[str]:
        """What the leakage and sanity screen flagged when this version was trained (empty: nothing)."""
        return list((self.screen or {}).get("findings") or [])

    @property
    def background_name(self) -> str:
        """The explainer background's name in the artifacts storage, beside the model file."""
        return f"{self.artifact_name}.background.npz"


class ValidationNote(models.Model):
    """ValidationNote: what a validator found when judging a model version (tests run,
    concerns, conditions), kept with who wrote it and when; notes are added, never edited."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="validation_notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note {self.pk} on model version {self.model_version_id}"


class TuningStudy(models.Model):
    """TuningStudy: an automatic hyper-parameter search (Optuna) for one portfolio
    and model kind. Its trials live in Optuna's tables in the project database, so
    several workers can run trials of one study at once."""

    STATUS_CHOICES = [(s, s.title()) for s in ("queued", "running", "done", "failed")]

    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, related_name="tuning_studies")
    kind = models.CharField(max_length=10, choices=family_choices)
    study_name = models.CharField(max_length=200, unique=True)
    n_trials = models.PositiveIntegerField()
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default="queued")
    trials_done = models.PositiveIntegerField(default=0)
    best_value = models.FloatField(null=True, blank=True)
    best_params = models.JSONField(default=dict, blank=True)
    best_model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Renewed by every worker running one of its trials (see ImportJob.worker).
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "tuning studies"

    def __str__(self) -> str:
        return f"{self.study_name} ({self.trials_done}/{self.n_trials})"


class ReasonCode(models.Model):
    """ReasonCode: the catalogue entry that turns a feature's contribution into the
    sentence a declined applicant reads (adverse-action notice). Defaults are
    generated from the schema; analysts edit the wording in the admin."""

    schema = models.ForeignKey(DatasetSchema, on_delete=models.CASCADE, related_name="reason_codes")
    feature = models.CharField(max_length=200, help_text="schema column, or history:<window> for temporal reasons")
    code = models.CharField(max_length=20)
    text = models.CharField(max_length=300, help_text="e.g. 'Debt to income ratio too high'")

    class Meta:
        ordering = ["schema_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["schema", "feature"], name="uniq_reason_feature"),
            models.UniqueConstraint(fields=["schema", "code"], name="uniq_reason_code"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"


class BatchRun(models.Model):
    """BatchRun: scoring every applicant of a portfolio with one model version, split
    into chunks that workers claim one at a time; with a challenger, the same rows
    are shadow-scored and the differing decisions counted."""

    STATUS_PENDING = "pending"
    STATUS_RUNNING = "running"
    STATUS_CANCELLED = "cancelled"
    STATUS_DONE = "done"
    STATUS_FAILED = "failed"
    STATUS_CHOICES = [
        (s, s.title()) for s in (STATUS_PENDING, STATUS_RUNNING, STATUS_CANCELLED, STATUS_DONE, STATUS_FAILED)
    ]
    TRIGGER_CHOICES = [(t, t.title()) for t in ("command", "api", "portal", "nightly")]

    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, related_name="batch_runs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="batch_runs")
    challenger_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=STATUS_PENDING, db_index=True)
    trigger = models.CharField(max_length=20, choices=TRIGGER_CHOICES, default="command")
    chunk_size = models.PositiveIntegerField(default=5000)
    rows_total = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    decisions_differ = models.BigIntegerField(null=True, blank=True, help_text="challenger vs champion")
    policy_version = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.RESTRICT, related_name="+",
        help_text="the policy every row of the run is decided under (fixed when the run is created)",
    )  # fmt: skip
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The run is pinned to model_version at start; when that version retires mid-run
    # (a new champion) the rest is still scored by it, and this says when it retired.
    model_retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.portfolio_id} ({self.status}, {self.rows_done}/{self.rows_total})"


class ScoreChunk(models.Model):
    """ScoreChunk: a contiguous range of applicant ids of a batch run; the unit a
    worker claims (pending → running → done by conditional update)."""

    STATUS_CHOICES = [(s, s.title()) for s in ("pending", "running", "done")]

    run = models.ForeignKey(BatchRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_applicant_id = models.BigIntegerField()
    last_applicant_id = models.BigIntegerField()
    rows = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default="pending", db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # When a message for it was last sent: a pending chunk whose message is older than
    # the stale limit has lost it (a broker restarted empty) and is sent again.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="uniq_chunk_index")]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id} ({self.status})"


class Score(models.Model):
    """Score: one decision. PD, points, approve/refer/decline and the reasons, with
    the full contribution vector (log-odds per model input, adding up with
    ``base_log_odds`` to the calibrated log-odds), the model version, and the exact
    input (and its hash) so the decision can be replayed."""

    # No single-column indexes on portfolio, applicant and run: the (portfolio,
    # -created_at), (applicant, -created_at) and unique (run, applicant,
    # model_version) indexes lead with them and serve the same lookups; three more
    # indexes cost every one of a batch's millions of inserts.
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="+", db_index=False)
    applicant = models.ForeignKey(
        Applicant, null=True, blank=True, on_delete=models.CASCADE, related_name="scores", db_index=False
    )
    run = models.ForeignKey(
        BatchRun, null=True, blank=True, on_delete=models.CASCADE, related_name="scores", db_index=False
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="scores")
    is_shadow = models.BooleanField(default=False, help_text="a challenger's score, never a decision")
    pd = models.FloatField()
    score = models.FloatField()
    decision = models.CharField(max_length=10)
    base_log_odds = models.FloatField()
    reasons = models.JSONField(default=list)
    contributions = models.JSONField(default=list, help_text="log-odds per input group, in the model version's order")
    input_features = models.JSONField(default=dict)
    input_history = models.BinaryField(null=True, blank=True, help_text="float32 (months, 3), NaN where no data")
    input_hash = models.CharField(max_length=64)
    policy_version = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.RESTRICT, related_name="+",
        help_text="the credit policy the decision was made under (null: scored before policies were versioned)",
    )  # fmt: skip
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["portfolio", "-created_at"]), models.Index(fields=["applicant", "-created_at"])]
        constraints = [
            # A redelivered chunk writes nothing twice.
            models.UniqueConstraint(fields=["run", "applicant", "model_version"], name="uniq_run_applicant_model"),
        ]

    def __str__(self) -> str:
        return f"{self.applicant_id}: {self.score:.0f} {self.decision}"


class MonitoringReport(models.Model):
    """MonitoringReport: one monitoring check of a model version on a portfolio, run
    after scoring: population stability (PSI of the score, CSI of each feature
    against the training sample), an outcome backtest by monthly cohort, or a
    fairness report per protected attribute. ``status`` is the worst finding;
    ``alerts`` lists each breach in words."""

    KIND_STABILITY = "stability"
    KIND_BACKTEST = "backtest"
    KIND_FAIRNESS = "fairness"
    KIND_CHOICES = [(KIND_STABILITY, "Stability (PSI/CSI)"), (KIND_BACKTEST, "Backtest"), (KIND_FAIRNESS, "Fairness")]
    STATUS_PASS = "pass"  # noqa: S105  (a report status, not a password)
    STATUS_WATCH = "watch"
    STATUS_FAIL = "fail"
    STATUS_CHOICES = [(STATUS_PASS, "Pass"), (STATUS_WATCH, "Watch"), (STATUS_FAIL, "Fail")]

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="monitoring_reports")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="monitoring_reports")
    run = models.ForeignKey(BatchRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=STATUS_PASS)
    results = models.JSONField(default=dict, blank=True)
    alerts = models.JSONField(default=list, blank=True)
    rows = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["model_version", "kind", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} of {self.model_version_id}: {self.status}"


class AuditEvent(models.Model):
    """AuditEvent: one entry of the append-only, hash-chained audit log. Ids only,
    never PII. The database refuses UPDATE and DELETE on this table (triggers), and
    ``hash`` chains each event to the one before, so a row edited or removed behind
    the application's back is found by ``verify_audit_log``. No foreign keys: a row
    must never change because a user or portfolio was deleted."""

    OUTCOME_CHOICES = [(o, o.title()) for o in ("success", "denied", "failure")]

    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.IntegerField(null=True, blank=True, db_index=True)
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=50, db_index=True)
    outcome = models.CharField(max_length=10, choices=OUTCOME_CHOICES, default="success")
    portfolio_id = models.IntegerField(null=True, blank=True, db_index=True)
    object_type = models.CharField(max_length=50, blank=True)
    object_ids = models.JSONField(default=list, blank=True)
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Written empty; the sealer (scoring.audit.audit_seal) fills them, once, in one batch:
    # the position in the chain (1, 2, 3, ...; ids may skip and may commit out of order,
    # seq never skips, so a missing event shows as a gap), the link to the event before,
    # this event's hash and the batch (AuditSeal) whose signed Merkle root covers it.
    # The trigger lets an UPDATE set these four on an unsealed row and nothing else.
    seq = models.BigIntegerField(unique=True, null=True, blank=True)
    prev_hash = models.CharField(max_length=64, null=True, blank=True)
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    seal = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The sealer's queue and /readyz's overdue check: unsealed rows only, so it stays tiny.
            models.Index(fields=["occurred_at"], condition=models.Q(seq__isnull=True), name="scoring_audit_unsealed"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action}"

    @property
    def is_sealed(self) -> bool:
        return self.seq is not None


class AuditSeal(models.Model):
    """AuditSeal: one batch of the audit chain. The sealer gives the events written
    since the last batch their ``seq`` (in id order), hashes them, and signs the Merkle
    root of their hashes chained to the previous batch (``prev_hash``), so every sealed
    event is tamper-evident without a lock on the writers. Append-only like the events."""

    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField(unique=True)
    merkle_root = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=128)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"seal {self.pk}: events {self.first_seq}-{self.last_seq}"


class AuditCheckpoint(models.Model):
    """AuditCheckpoint: a periodic signed statement of the chain head (the id and
    hash of the last event covered), as AWS CloudTrail's digest files: an attacker
    who rewrites the whole chain from some point on cannot re-sign the checkpoints."""

    last_event_id = models.BigIntegerField(unique=True)
    last_event_hash = models.CharField(max_length=64)
    events = models.BigIntegerField(default=0)
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_event_id"]

    def __str__(self) -> str:
        return f"checkpoint at event {self.last_event_id}"


class ApiToken(models.Model):
    """ApiToken: a credential of an API client. It acts as its user, narrowed to
    ``portfolios`` when any are set (never widened). Only a SHA-256 of the key is
    stored; the key is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    portfolios = models.ManyToManyField(
        Portfolio, blank=True, related_name="+", help_text="empty: every portfolio the user is granted"
    )
    # Set when created with portfolios: a narrowed token whose portfolios were all
    # deleted reaches nothing, instead of falling back to every portfolio of its user.
    narrowed = models.BooleanField(default=False, help_text="limited to its portfolios")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"


class LoginThrottle(models.Model):
    """LoginThrottle: failed logins per username and per client address, counted in
    the database (not a per-process cache) so the lockout holds across web
    processes and concurrent attempts."""

    key = models.CharField(max_length=200, unique=True, help_text="user:<name> or ip:<address>")
    failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"


class PolicyVersion(models.Model):
    """PolicyVersion: one immutable version of a portfolio's credit policy — the points
    scale, the approve/decline cutoffs, the reason-code catalogue and the strategy rules.

    A change is a new version: proposed by one person, approved (or rejected) by a
    second with the policy role, never the proposer (``scoring.services.policy``).
    The portfolio's ``policy_version`` names the one in force; every score names the
    version it was decided under, so a replay applies that version, not today's.
    Once stored, the content fields never change (``save`` refuses it)."""

    STATUS_PROPOSED = "proposed"
    STATUS_APPROVED = "approved"
    STATUS_REJECTED = "rejected"
    STATUS_CHOICES = [(s, s.title()) for s in (STATUS_PROPOSED, STATUS_APPROVED, STATUS_REJECTED)]
    # What a version decides with; the rest (status, who decided and when) records its review.
    CONTENT_FIELDS = (
        "base_score", "base_odds", "pdo", "approve_min_score", "decline_below_score", "reason_catalogue", "rules",
    )  # fmt: skip

    # A portfolio's policies go with it, as its scores and runs do; while it exists its
    # versions cannot be deleted alone (the portfolio, scores and runs name them with RESTRICT,
    # which, unlike PROTECT, lets a portfolio's deletion take its versions with it).
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="policy_versions")
    version = models.PositiveIntegerField(help_text="Sequence number within the portfolio.")
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=STATUS_PROPOSED, db_index=True)
    base_score = models.FloatField()
    base_odds = models.FloatField(validators=[MinValueValidator(1e-9)])
    pdo = models.FloatField(validators=[MinValueValidator(1e-9)])
    approve_min_score = models.FloatField()
    decline_below_score = models.FloatField()
    reason_catalogue = models.JSONField(default=dict, blank=True, help_text="reason key → {code, text, group}")
    rules = models.JSONField(default=list, blank=True, help_text="strategy rules: a decision table (see policy)")
    content_sha256 = models.CharField(max_length=64)
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True, help_text="why the change is proposed")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["portfolio_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["portfolio", "version"], name="uniq_policy_version")]

    def __str__(self) -> str:
        return f"policy v{self.version} of portfolio {self.portfolio_id} ({self.status})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            fields = kwargs.get("update_fields")
            if fields is None or set(fields) & {*self.CONTENT_FIELDS, "portfolio", "version", "content_sha256"}:
                raise ValueError("A policy version is immutable: propose a new version instead.")
        super().save(*args, **kwargs)

    def content(self) -> dict:
        return {name: getattr(self, name) for name in self.CONTENT_FIELDS}


class CacheVersion(models.Model):
    """CacheVersion: the one counter that per-process caches of grants, tokens,
    champions, policies and reason texts compare with on each request
    (``scoring.caches``). Any change to what they hold bumps it in the changing
    transaction, so every web process sees the change on its next request."""

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"cache version {self.value}"


class ReviewDecision(models.Model):
    """ReviewDecision: a person's handling of one referred decision — who took the case
    and when, and the final decision (approve or decline) with its reason, stored beside
    the model's. The score row itself never changes; this row is its review.

    A case is *open* until an underwriter takes it (``assigned_to``), *taken* until they
    release it or decide it, then *decided* for good: once ``decided_at`` is set the row
    refuses every change (``save``). Written only by ``scoring.services.reviews``.

    ``model_decision`` is the decision the score's points and the cutoffs give, before
    strategy rules (a refer rule may refer an applicant the points approve); the final
    decision is an *override* when the model approved or declined and the person decided
    otherwise (in the refer band the model has no decision to override). Every decided
    case is *resolved by review*, whichever way."""

    STATE_OPEN, STATE_TAKEN, STATE_DECIDED = "open", "taken", "decided"
    DECISION_CHOICES = [("approve", "Approve"), ("decline", "Decline")]

    score = models.OneToOneField(Score, on_delete=models.CASCADE, related_name="review")
    # Denormalised from the score: the gate filters reviews by an indexed portfolio_id.
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="+")
    applicant = models.ForeignKey(Applicant, on_delete=models.CASCADE, related_name="reviews")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    # The application reviewed: a later score of the same input (a nightly rescoring) is decided already.
    input_hash = models.CharField(max_length=64)
    model_decision = models.CharField(max_length=10, help_text="the points against the cutoffs, before rules")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taken_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=10, choices=DECISION_CHOICES, blank=True)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True, db_index=True)
    is_override = models.BooleanField(default=False, help_text="the final decision differs from the model's")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["applicant", "input_hash"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(decided_at__isnull=True) | ~models.Q(decision=""), name="review_decided_has_decision"
            ),
        ]

    def __str__(self) -> str:
        return f"review of score {self.score_id}: {self.state}"

    def save(self, *args, **kwargs):
        if self.pk is not None and ReviewDecision.objects.filter(pk=self.pk, decided_at__isnull=False).exists():
            raise ValueError("A decided review is final: it cannot be changed.")
        super().save(*args, **kwargs)

    @property
    def state(self) -> str:
        if self.decided_at is not None:
            return self.STATE_DECIDED
        return self.STATE_TAKEN if self.assigned_to_id is not None else self.STATE_OPEN


# Decision events live in their own module (this one passed the house limit of ~800 lines).
from scoring.webhook_models import WebhookDelivery as WebhookDelivery  # noqa: E402
from scoring.webhook_models import WebhookEndpoint as WebhookEndpoint  # noqa: E402
