"""Examples of request and response bodies for the OpenAPI documentation.

Values are those of the synthetic demo portfolio; numbers add up the way real ones
do (``base_log_odds`` plus the contributions is the log-odds of ``pd``; the points
follow the portfolio's scale, 600 points at 50:1 and 20 points to double the odds).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

CREATED = "2026-11-03T09:41:27.512Z"

PORTFOLIO = {
    "id": 1,
    "name": "Synthetic",
    "description": "Seeded synthetic applicants with 24 months of repayment history.",
    "schema": "synthetic v1",
    "is_active": True,
    "base_score": 600.0,
    "base_odds": 50.0,
    "pdo": 20.0,
    "approve_min_score": 560.0,
    "decline_below_score": 530.0,
    "created_at": "2026-10-02T08:00:00Z",
}

SCHEMA = {
    "id": 2,
    "name": "synthetic",
    "version": 1,
    "description": "Seeded synthetic applicants.",
    "definition": {
        "name": "synthetic",
        "version": 1,
        "columns": [
            {"name": "applicant_id", "role": "id", "type": "string"},
            {"name": "income", "role": "numeric", "type": "float", "min": 0, "max": 100000000},
            {"name": "home_ownership", "role": "categorical", "type": "string", "categories": ["rent", "own"]},
            {"name": "full_name", "role": "pii", "type": "string"},
            {"name": "defaulted", "role": "target", "type": "string"},
        ],
    },
    "sha256": "5f0c6b3b1d0e4c53a0f2a7d4c1e9b8a6d3f2e1c0b9a8f7e6d5c4b3a2f1e0d9c8",
    "created_at": "2026-10-02T08:00:00Z",
}

FEATURES = {
    "income": 42000.0,
    "loan_amount": 9000.0,
    "duration_months": 36,
    "debt_to_income": 0.61,
    "employment_years": 0.5,
    "num_credit_lines": 3,
    "home_ownership": "rent",
    "purpose": "car",
    "region": "north",
}

# The first applicant of the German credit demo portfolio (id 1 after `make run`).
GERMAN_FEATURES = {
    "status_of_existing_checking_account": "... < 0 DM",
    "duration_in_month": 6,
    "credit_history": "critical account/ other credits existing (not at this bank)",
    "purpose": "radio/television",
    "credit_amount": 1169,
    "savings_account_and_bonds": "unknown/ no savings account",
    "present_employment_since": "... >= 7 years",
    "installment_rate_in_percentage_of_disposable_income": 4,
    "other_debtors_or_guarantors": "none",
    "present_residence_since": 4,
    "property": "real estate",
    "other_installment_plans": "none",
    "housing": "own",
    "number_of_existing_credits_at_this_bank": 2,
    "job": "skilled employee / official",
    "number_of_people_being_liable_to_provide_maintenance_for": 1,
    "telephone": "yes, registered under the customers name",
}

APPLICANT = {
    "id": 4711,
    "portfolio": 1,
    "external_id": "SYN00004711",
    "schema": 2,
    "features": FEATURES,
    "created_at": "2026-10-02T08:03:11Z",
    "updated_at": "2026-10-02T08:03:11Z",
}

REASONS = [
    {
        "feature": "debt_to_income",
        "code": "R004",
        "text": "Debt to income ratio too high: 0.61",
        "value": 0.61,
        "log_odds": 0.412,
        "points": -11.8878,
    },
    {
        "feature": "history.days_past_due:last_6m",
        "code": "R016",
        "text": "Payments 30+ days late in 2 of the last 6 months",
        "value": 2,
        "log_odds": 0.231,
        "points": -6.6653,
    },
    {
        "feature": "employment_years",
        "code": "R005",
        "text": "Employment years: 0.5",
        "value": 0.5,
        "log_odds": 0.118,
        "points": -3.4048,
    },
    {
        "feature": "loan_amount",
        "code": "R002",
        "text": "Loan amount: 9000.0",
        "value": 9000.0,
        "log_odds": 0.06,
        "points": -1.7312,
    },
]

SCORE = {
    "id": 90211,
    "portfolio": 1,
    "applicant": 4711,
    "run": None,
    "model_version": 7,
    "model_version_number": 2,
    "policy_version": 3,
    "is_shadow": False,
    "pd": 0.0790736768698401,
    "score": 557.9592,
    "decision": "refer",
    "base_log_odds": -2.9,
    "reasons": REASONS,
    "input_hash": "9b2f4c1e0d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c",
    "created_at": CREATED,
}

SCORE_DETAIL = {
    **SCORE,
    "contributions": [0.412, 0.06, 0.052, 0.118, -0.083, 0.01, -0.145, -0.21, 0.231],
    "input_features": FEATURES,
}

EXPLANATION = {
    "score_id": 90211,
    "applicant": 4711,
    "model_version": 7,
    "pd": 0.0790736768698401,
    "score": 557.9592,
    "decision": "refer",
    "base_log_odds": -2.9,
    "base_points": 570.7992,
    "log_odds": -2.455,
    "scale": {"base_score": 600.0, "base_odds": 50.0, "pdo": 20.0},
    "policy_version": {"id": 3, "version": 2, "note": "decided and explained under policy v2"},
    "contributions": [
        {"group": "debt_to_income", "value": 0.61, "log_odds": 0.412, "points": -11.8878},
        {"group": "history.days_past_due:last_6m", "value": 2, "log_odds": 0.231, "points": -6.6653},
        {"group": "employment_years", "value": 0.5, "log_odds": 0.118, "points": -3.4048},
        {"group": "loan_amount", "value": 9000.0, "log_odds": 0.06, "points": -1.7312},
        {"group": "duration_months", "value": 36, "log_odds": 0.052, "points": -1.5004},
        {"group": "region", "value": "north", "log_odds": 0.01, "points": -0.2885},
        {"group": "income", "value": 42000.0, "log_odds": -0.083, "points": 2.3949},
        {"group": "home_ownership", "value": "rent", "log_odds": -0.145, "points": 4.1838},
        {"group": "history.observed:last_6m", "value": 24, "log_odds": -0.21, "points": 6.0593},
    ],
    "reasons": REASONS,
    "boundary": {
        "cutoff": 560.0,
        "points_short": 2.0408,
        "costs": [
            {
                "group": "debt_to_income",
                "points": 9.1,
                "code": "R004H",
                "cause": "debt_to_income",
                "value": 0.61,
                "text": "Debt to income is high (0.61)",
            }
        ],
        "principal": [
            {
                "group": "debt_to_income",
                "points": 9.1,
                "code": "R004H",
                "cause": "debt_to_income",
                "value": 0.61,
                "text": "Debt to income is high (0.61)",
            }
        ],
    },
    "created_at": CREATED,
}

# The headline figures of models.metrics.evaluate (the stored report also has deciles, cut-offs, ROC and KS curves).
METRICS = {"n": 1500, "bad_rate": 0.102, "mean_pd": 0.0998, "auc": 0.781, "gini": 0.562, "ks": 0.431,
           "brier": 0.0812, "log_loss": 0.2817}  # fmt: skip

MODEL = {
    "id": 7,
    "portfolio": 1,
    "version": 3,
    "kind": "cnn",
    "status": "trained",
    "schema": 2,
    "hyperparameters": {"max_epochs": 40, "patience": 5, "batch_size": 512, "lr": 0.003},
    "seed": 0,
    "training_data_fingerprint": "c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2",
    "training_rows": 10000,
    "code_version": "1.4.0+g3f2a1b0",
    "device": "cpu",
    "artifact_sha256": "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8",
    "tuning_study": None,
    "trained_by": 3,
    "created_at": "2026-11-01T10:00:00Z",
    "trained_at": "2026-11-01T10:04:12Z",
    "approved_by": None,
    "approved_at": None,
    "promoted_by": None,
    "promoted_at": None,
    "promotion_override_reason": "",
    "promotion_override_by": None,
    "promotion_override_at": None,
    "rejection_reason": "",
    "rejected_by": None,
    "rejected_at": None,
    "progress": {"epoch": 17, "max_epochs": 40, "train_loss": 0.2961, "val_auc": 0.7794},
    "error": "",
    "training_group": None,
}

VALIDATION_NOTE = {
    "id": 12,
    "model_version": 7,
    "author": 5,
    "author_username": "validator_a",
    "text": "Out-of-time sample 2026-Q3 reproduces the test AUC within 0.01; CSI of income at 0.08 is acceptable.",
    "created_at": "2026-11-02T09:30:00Z",
}

MODEL_DETAIL = {
    **MODEL,
    "validation_notes": [VALIDATION_NOTE],
    "metrics": {"train": {**METRICS, "auc": 0.802, "n": 6000}, "validation": METRICS, "test": METRICS},
    "baseline_metrics": {"test": {**METRICS, "auc": 0.744, "gini": 0.488}},
    "validations": {
        "trained_on": "out_of_time",
        "out_of_time": {
            "test": {**METRICS, "auc": 0.752},
            "baseline_test": {**METRICS, "auc": 0.721},
            "rows": {"train": 6000, "validation": 1500, "calibration": 1000, "test": 1500},
            "dates": {
                "train": ["2019-01-03", "2024-02-29"],
                "validation": ["2024-03-01", "2025-01-31"],
                "calibration": ["2025-02-01", "2025-07-31"],
                "test": ["2025-08-01", "2026-04-30"],
            },
        },
        "stratified": {
            "test": METRICS,
            "baseline_test": {**METRICS, "auc": 0.744},
            "rows": {"train": 6000, "validation": 1500, "calibration": 1000, "test": 1500},
        },
    },
    "screen": {
        "format_version": 1,
        "rows": 6000,
        "thresholds": {
            "feature_auc": 0.85,
            "separation": 0.5,
            "separation_fpr": 0.01,
            "pattern_gap": 0.3,
            "model_gap": 0.15,
            "model_auc": 0.97,
        },
        "features": [
            {
                "feature": "term_months",
                "type": "numeric",
                "auc": 0.808,
                "separation": 0.3,
                "patterns": {"multiple_of_12": {"defaulted": 0.258, "repaid": 0.979}},
                "flags": [
                    "multiple of 12: 25.8% of defaulters against 97.9% of the others "
                    "(a value recorded after the outcome?)"
                ],
            }
        ],
        "model": {"auc": 0.781, "baseline_auc": 0.744, "flags": []},
        "flagged": ["term_months"],
        "findings": [
            "term_months: multiple of 12: 25.8% of defaulters against 97.9% of the others "
            "(a value recorded after the outcome?)"
        ],
    },
}

MODEL_QUEUED = {
    **MODEL,
    "status": "queued",
    "training_data_fingerprint": "",
    "training_rows": 0,
    "code_version": "",
    "device": "",
    "artifact_sha256": "",
    "trained_at": None,
    "progress": {},
}

MODEL_APPROVED = {**MODEL, "status": "approved", "approved_by": 5, "approved_at": CREATED}
MODEL_REJECTED = {
    **MODEL,
    "status": "rejected",
    "rejection_reason": "Below the logistic baseline on the out-of-time sample (AUC 0.731 against 0.744).",
    "rejected_by": 5,
    "rejected_at": CREATED,
}
MODEL_CHAMPION = {**MODEL_APPROVED, "status": "champion", "promoted_by": 5, "promoted_at": CREATED}

MODEL_STATUS = {
    "id": 7,
    "version": 3,
    "kind": "cnn",
    "status": "training",
    "progress": {"epoch": 17, "max_epochs": 40, "train_loss": 0.2961, "val_auc": 0.7794},
    "error": "",
    "created_at": "2026-11-01T10:00:00Z",
    "started_at": "2026-11-01T10:00:02Z",
    "trained_at": None,
    "approved_at": None,
    "promoted_at": None,
}

MODEL_METRICS = {
    "id": 7,
    "version": 3,
    "kind": "cnn",
    "status": "trained",
    "training_rows": 10000,
    "training_data_fingerprint": MODEL["training_data_fingerprint"],
    "metrics": MODEL_DETAIL["metrics"],
    "baseline_metrics": MODEL_DETAIL["baseline_metrics"],
    "validations": MODEL_DETAIL["validations"],
    "screen": MODEL_DETAIL["screen"],
}

TUNING_STUDY = {
    "id": 4,
    "portfolio": 1,
    "kind": "mlp",
    "study_name": "portfolio-1-mlp-8c1f0e2d3b4a",
    "n_trials": 20,
    "trials_done": 0,
    "seed": 0,
    "status": "queued",
    "best_value": None,
    "best_params": {},
    "best_model_version": None,
    "error": "",
    "requested_by": 3,
    "created_at": CREATED,
    "finished_at": None,
}

TUNING_STUDY_DONE = {
    **TUNING_STUDY,
    "status": "done",
    "trials_done": 20,
    "best_value": 0.7843,
    "best_params": {"lr": 0.0031, "dropout": 0.12, "weight_decay": 0.0004, "batch_size": 512, "width": 64, "depth": 2},
    "best_model_version": 8,
    "finished_at": CREATED,
}

BATCH_PROGRESS = {"status": "running", "rows_done": 415000, "rows_total": 1000000, "chunks_done": 83,
                  "chunks_total": 200, "fraction": 0.415, "rows_per_second": 5210.4, "eta_seconds": 112.3,
                  "elapsed_seconds": 79.6, "decisions_differ": None}  # fmt: skip
BATCH_RUN = {
    "id": 12,
    "portfolio": 1,
    "model_version": 7,
    "challenger_version": None,
    "status": "running",
    "trigger": "api",
    "chunk_size": 5000,
    "rows_total": 1000000,
    "rows_done": 415000,
    "chunks_total": 200,
    "chunks_done": 83,
    "decisions_differ": None,
    "progress": BATCH_PROGRESS,
    "created_at": CREATED,
    "started_at": "2026-11-03T09:41:28Z",
    "finished_at": None,
}  # fmt: skip

BATCH_RUN_STARTED = {
    **BATCH_RUN,
    "status": "pending",
    "rows_done": 0,
    "chunks_done": 0,
    "started_at": None,
    "progress": {
        **BATCH_PROGRESS,
        "status": "pending",
        "rows_done": 0,
        "chunks_done": 0,
        "fraction": 0.0,
        "rows_per_second": 0.0,
        "eta_seconds": 0.0,
        "elapsed_seconds": 0.0,
    },
}

IMPORT_REQUEST = {
    "portfolio": 1,
    "kind": "applicants",
    "file": "applicants-2026-11.csv",
    "valid_only": False,
    "encoding": "utf-8",
}
SCHEMA_INFER_REQUEST = {"portfolio": 1, "file": "SBAnational.csv", "encoding": "utf-8", "top": 50}
SCHEMA_INFER_RESULT = {
    "schema": {
        "name": "sbanational",
        "version": 1,
        "description": "Proposed by infer_schema from 50,000 rows of SBAnational.csv; review before use.",
        "application_date": "ApprovalDate",
        "columns": [
            {"name": "LoanNr_ChkDgt", "role": "id", "type": "string"},
            {"name": "DisbursementGross", "role": "numeric", "type": "money", "currency": ["$"],
             "thousands": ",", "decimal": "."},
            {"name": "ApprovalDate", "role": "numeric", "type": "date", "formats": ["%d-%b-%y"],
             "two_digit_year_pivot": 2026, "derive": []},
            {"name": "MIS_Status", "role": "target", "type": "category", "categories": ["P I F", "CHGOFF"],
             "positive_label": "CHGOFF", "nullable": True},
        ],
    },
    "columns": [
        {"name": "DisbursementGross", "missing": 0, "distinct": 2174, "unique": False,
         "frequencies": [{"value": "$50,000.00", "count": 412}], "reasons": ["money in 50,000 of 50,000 cells"],
         "proposed": {"name": "DisbursementGross", "role": "numeric", "type": "money"}},
    ],
    "targets": [{"name": "MIS_Status", "labels": ["P I F", "CHGOFF"], "positive_label": "CHGOFF"}],
    "rows_sampled": 50000,
}  # fmt: skip
IMPORT_JOB = {
    "id": 31,
    "portfolio": 1,
    "kind": "applicants",
    "schema": 2,
    "file_name": "applicants-2026-11.csv",
    "file_sha256": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "file_size": 734003,
    "status": "rejected",
    "valid_only": False,
    "rows_total": 10000,
    "rows_valid": 9998,
    "rows_invalid": 2,
    "rows_created": 0,
    "rows_updated": 0,
    "rows_unchanged": 0,
    "error_count": 2,
    "errors": [
        {"row": 17, "column": "debt_to_income", "value": "lots", "message": "not a number"},
        {"row": 902, "column": "purpose", "value": "yacht", "message": "not one of car, home, education, other"},
    ],
    "warning_count": 0,
    "summary": [
        {
            "severity": "error",
            "column": "debt_to_income",
            "problem": "not a number",
            "count": 1,
            "examples": [{"row": 17, "value": "lots"}],
        },
        {
            "severity": "error",
            "column": "purpose",
            "problem": "not one of car, home, education, other",
            "count": 1,
            "examples": [{"row": 902, "value": "yacht"}],
        },
    ],
    "message": "2 invalid rows; nothing was written.",
    "created_by": 3,
    "created_at": CREATED,
    "started_at": "2026-11-03T09:41:28Z",
    "finished_at": "2026-11-03T09:41:31Z",
}
IMPORT_JOB_SUMMARY = {k: v for k, v in IMPORT_JOB.items() if k not in ("errors", "summary")}
IMPORT_JOB_PENDING = {
    **IMPORT_JOB_SUMMARY,
    "status": "pending",
    "rows_total": 0,
    "rows_valid": 0,
    "rows_invalid": 0,
    "error_count": 0,
    "errors": [],
    "summary": [],
    "message": "",
    "started_at": None,
    "finished_at": None,
}

AUDIT_EVENT = {
    "id": 5120,
    "seq": 5120,
    "occurred_at": CREATED,
    "actor_id": 3,
    "actor_username": "analyst",
    "action": "applicant.explain",
    "outcome": "success",
    "portfolio_id": 1,
    "object_type": "score",
    "object_ids": [90211],
    "details": {},
    "request_id": "6f1c2a9e0b7d4c3f",
    "ip": "10.0.4.17",
    "prev_hash": "3e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d",
    "hash": "7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b",
}
AUDIT_CSV = (
    "id,seq,occurred_at,actor_id,actor_username,action,outcome,portfolio_id,object_type,object_ids,details,"
    "request_id,ip,prev_hash,hash\r\n"
    "5120,5120,2026-11-03 09:41:27.512000+00:00,3,analyst,applicant.explain,success,1,score,[90211],{},"
    "6f1c2a9e0b7d4c3f,10.0.4.17,3e1d0c9b...,7a6b5c4d...\r\n"
)


REVIEW_REPORT = {"model_version": 3, "referred": 412, "reviewed": 380, "approved": 231, "declined": 149,
                 "overrides": 17, "override_rate": 0.04473684210526316}  # fmt: skip


def response(name: str, value, *, status: int = 200, description: str = "") -> OpenApiExample:
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(status)], description=description)


def request(name: str, value, *, description: str = "", media_type: str | None = None) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True, description=description, media_type=media_type)


RECOURSE = {
    "score": 90211,
    "applicant": 4711,
    "model_version": 7,
    "policy_version": 3,
    "policy_note": "decided under policy v2",
    "decision": "decline",
    "points": 531.2,
    "target": "approve",
    "feasible": True,
    "message": "2 change set(s) reach approve under the policy the score was decided under.",
    "suggestions": [
        {
            "changes": [
                {"feature": "debt_to_income", "label": "Debt to income", "before": 0.61, "after": 0.42,
                 "before_text": "0.61", "after_text": "0.42", "cost": 0.95},
            ],
            "cost": 1.45,
            "pd": 0.0688,
            "score": 561.3,
            "decision": "approve",
        },
        {
            "changes": [
                {"feature": "duration_months", "label": "Duration months", "before": 48, "after": 24,
                 "before_text": "48", "after_text": "24", "cost": 1.0},
                {"feature": "loan_amount", "label": "Loan amount", "before": 9000.0, "after": 7500.0,
                 "before_text": "9,000", "after_text": "7,500", "cost": 0.3},
            ],
            "cost": 2.3,
            "pd": 0.0671,
            "score": 562.0,
            "decision": "approve",
        },
    ],
    "immutable": ["region", "num_credit_lines"],
    "immutable_labels": ["Region", "Num credit lines"],
    "evaluated": 512,
}  # fmt: skip

RECOURSE_NONE = {
    **RECOURSE,
    "feasible": False,
    "message": "No change within bounds: no combination of up to three actionable features reaches approve.",
    "suggestions": [],
}

ROLLBACK_REASON = "v4 approves too many thin-file applicants in the first week; back to v3 until reviewed."
MODEL_RESTORED = {**MODEL_CHAMPION, "id": 6, "version": 2}

GROUP = "5f0c2a9e-8d1b-4c7e-9a3f-2b6d1e4c8a70"
_QUEUED_MLP = {**MODEL_QUEUED, "id": 8, "version": 4, "kind": "mlp", "hyperparameters": {}, "training_group": GROUP,
               "progress": {}}  # fmt: skip
_QUEUED_TREES = {**_QUEUED_MLP, "id": 9, "version": 5, "kind": "trees"}
TRAIN_GROUP_QUEUED = {**_QUEUED_MLP, "group_versions": [_QUEUED_MLP, _QUEUED_TREES]}
_DECILES = [{"decile": 1, "count": 150, "mean_pd": 0.012, "observed_rate": 0.013, "min_pd": 0.002, "max_pd": 0.019},
            {"decile": 10, "count": 150, "mean_pd": 0.391, "observed_rate": 0.402, "min_pd": 0.241, "max_pd": 0.93}]  # fmt: skip
LEADERBOARD = {
    "training_group": GROUP,
    "same_rows": True,
    "figures_from": "stored",
    "test_rows": 1500,
    "test_rows_sha256": "0d4f1e7a9c3b5d2e8f6a1c4b7e9d3f5a2c8b6e1d4f7a9c3b5e2d8f6a1c4b7e9d",
    "entries": [
        {"id": 8, "version": 4, "kind": "mlp", "status": "trained",
         "metrics": {**METRICS, "auc": 0.774, "gini": 0.548, "deciles": _DECILES},
         "fit_seconds": 41.2, "training_seconds": 58.7, "explained_rows_per_s": 18250.0},
        {"id": 9, "version": 5, "kind": "trees", "status": "trained",
         "metrics": {**METRICS, "deciles": _DECILES}, "fit_seconds": 6.4, "training_seconds": 15.1,
         "explained_rows_per_s": 41800.0},
    ],
    "baseline": {**METRICS, "auc": 0.744, "gini": 0.488, "ks": 0.392, "brier": 0.0861, "deciles": _DECILES},
    "baseline_fitted_with": 8,
}  # fmt: skip
