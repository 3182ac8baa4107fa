"""Django settings, driven entirely by the environment (see .env.example).

With no environment at all the service runs embedded: SQLite and kombu's
filesystem broker under var/, so a fresh machine needs no services and a real
Celery worker process still executes tasks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from riskapp.env import (
    audit_signing_keys,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_secret,
    env_str,
    parse_database_url,
    pii_encryption_keys,
    s3_storages,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")) or "").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = secret_key(VAR_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc assets served from here: offline, under the CSP
    "csp",
    "guardian",
    "django_celery_beat",
    "scoring",
]

MIDDLEWARE = [
    "scoring.metrics.RequestMetricsMiddleware",  # first: times the whole stack
    "scoring.middleware.NoStoreMiddleware",  # no cache keeps a copy of any page or API answer
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After authentication: it records denied requests with their user.
    "scoring.middleware.AuditMiddleware",
    # Last: sees a view's unhandled service error first, and answers it as a page.
    "scoring.middleware.ServiceErrorMiddleware",
]

ROOT_URLCONF = "riskapp.urls"
WSGI_APPLICATION = "riskapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
_database = parse_database_url(
    env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'riskapp.sqlite3'}") or "", base_dir=BASE_DIR
).as_django()
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and a worker write at once in the embedded set-up: WAL lets
    # readers proceed during a write, IMMEDIATE makes writers queue instead of
    # failing with "database is locked" half-way through a transaction.
    _database["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    _database["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _database["CONN_HEALTH_CHECKS"] = True
# Tests run against a file, not an in-memory database, so that a real Celery
# worker process started by a test can open the same SQLite database.
# One file per test process, so concurrent test runs on one checkout never share it.
_database["TEST"] = (
    {"NAME": str(VAR_DIR / f"test_riskapp_{os.getpid()}.sqlite3")}
    if str(_database["ENGINE"]).endswith("sqlite3")
    else {}
)
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # ModelBackend with the login throttle in front: admin, portal and API logins all pass here.
    "scoring.backends.ThrottledModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous requests see nothing.
GUARDIAN_RAISE_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request without it
# scoring/static is found by the app-directories finder (scoring is an installed app).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")) or "")
ARTIFACT_DIR = Path(env_str("ARTIFACT_DIR", str(VAR_DIR / "artifacts")) or "")
# Model artifacts, uploaded import files (while their import runs) and exports go through
# these storage aliases (scoring/storage.py). Local folders by default: ARTIFACT_DIR,
# MEDIA_ROOT/imports (uploads: folders 0700, files 0600), VAR_DIR/exports. With
# AWS_STORAGE_BUCKET_NAME set, all three are prefixes of that S3-compatible bucket
# (AWS_S3_ENDPOINT_URL for MinIO, Ceph, R2...; credentials from AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY, or boto3's own chain: a pod's role, an instance profile).
_private = {"directory_permissions_mode": 0o700, "file_permissions_mode": 0o600}
_local = "scoring.storage.SettingFolderStorage"
_file_storages = {
    "artifacts": {"BACKEND": _local, "OPTIONS": {"setting": "ARTIFACT_DIR", **_private}},
    "uploads": {"BACKEND": _local, "OPTIONS": {"setting": "MEDIA_ROOT", "subfolder": "imports", **_private}},
    "exports": {"BACKEND": _local, "OPTIONS": {"setting": "VAR_DIR", "subfolder": "exports", **_private}},
}
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    _file_storages = s3_storages(
        list(_file_storages),
        bucket_name=AWS_STORAGE_BUCKET_NAME,
        prefix=env_str("AWS_LOCATION", "") or "",
        endpoint_url=env_str("AWS_S3_ENDPOINT_URL"),
        region_name=env_str("AWS_S3_REGION_NAME"),
        access_key=env_secret("AWS_ACCESS_KEY_ID"),
        secret_key=env_secret("AWS_SECRET_ACCESS_KEY"),
        addressing_style=env_choice("AWS_S3_ADDRESSING_STYLE", "auto", {"auto", "path", "virtual"}),
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    **_file_storages,
}
# Files in the artifacts storage that no model version names, older than this, are deleted
# by the supervisor (a training killed between its model file and its row). 0 turns it off:
# needed when several databases (a staging copy, a bench) share one artifact store.
ARTIFACT_ORPHAN_GRACE_SECONDS = env_int("ARTIFACT_ORPHAN_GRACE_SECONDS", 24 * 3600, minimum=0)

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

# --- Ingestion limits ----------------------------------------------------------
IMPORT_MAX_FILE_MB = env_int("IMPORT_MAX_FILE_MB", 2048, minimum=1)
# Bounds on training work (scoring/services/hyperparams.py): GPUs of a train worker
# ("cuda:N" must be below it), versions queued or training per user, trials per study,
# tuning studies running per user.
# Denied anonymous requests per source address and window recorded one by one; beyond,
# the source is answered 429 and the window's burst is one audit event (scoring/middleware.py).
AUDIT_DENIED_BURST = env_int("AUDIT_DENIED_BURST", 30, minimum=1)
AUDIT_DENIED_WINDOW_S = env_int("AUDIT_DENIED_WINDOW_S", 60, minimum=1)
TRAIN_GPU_COUNT = env_int("TRAIN_GPU_COUNT", 1, minimum=0, maximum=64)
TRAIN_MAX_QUEUED_PER_USER = env_int("TRAIN_MAX_QUEUED_PER_USER", 5, minimum=1)
TUNE_MAX_TRIALS = env_int("TUNE_MAX_TRIALS", 50, minimum=1, maximum=1000)
TUNE_MAX_RUNNING_PER_USER = env_int("TUNE_MAX_RUNNING_PER_USER", 2, minimum=1)
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 50_000_000, minimum=1)
IMPORT_MAX_COLUMNS = env_int("IMPORT_MAX_COLUMNS", 500, minimum=1)
IMPORT_CHUNK_ROWS = env_int("IMPORT_CHUNK_ROWS", 50_000, minimum=100)
IMPORT_MAX_REPORTED_ERRORS = env_int("IMPORT_MAX_REPORTED_ERRORS", 1000, minimum=1)
# Examples kept of each (column, problem) pair of the report's summary (the counts are never capped).
IMPORT_REPORT_EXAMPLES = env_int("IMPORT_REPORT_EXAMPLES", 5, minimum=1)
# Limits enforced while the file is read (a small compressed file can expand without bound).
IMPORT_MAX_DECOMPRESSED_MB = env_int("IMPORT_MAX_DECOMPRESSED_MB", 8192, minimum=1)
IMPORT_MAX_CELL_CHARS = env_int("IMPORT_MAX_CELL_CHARS", 100_000, minimum=100)
IMPORT_MAX_LINE_KB = env_int("IMPORT_MAX_LINE_KB", 4096, minimum=64)
# Uncompressed bytes of one Parquet batch: with the chunk size, what bounds an import's memory.
IMPORT_MAX_BATCH_MB = env_int("IMPORT_MAX_BATCH_MB", 64, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("UPLOAD_MAX_MEMORY_MB", 10, minimum=1) * 1024 * 1024
# Uploads above this are streamed to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 1  # one file per import

# --- REST framework ------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "scoring.api.authentication.ApiTokenAuthentication",  # Authorization: Token <key>, SHA-256 stored
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # An upload larger than IMPORT_MAX_FILE_MB is refused before it is stored (scoring/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "scoring.api.parsers.DepthLimitedJSONParser",  # nesting depth bounded: no RecursionError
        "rest_framework.parsers.FormParser",
        "scoring.api.parsers.LimitedMultiPartParser",
    ],
    # Per process (the default cache): a brake on runaway clients and credential stuffing,
    # not a quota. Password logins have their own database-backed lockout (scoring/backends.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/minute"),
        "user": env_str("API_THROTTLE_USER", "20000/minute"),
    },
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "scoring.api.pagination.ApiPagination",  # ?page_size=, at most 500
    "DEFAULT_SCHEMA_CLASS": "scoring.api.schema.ApiAutoSchema",  # documents every operation's errors
    # Every error answers {"error": {"code", "message", "details"}} (scoring/api/errors.py).
    "EXCEPTION_HANDLER": "scoring.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Credit risk scoring service API",
    "VERSION": "1",
    "DESCRIPTION": (
        "Portfolios, applicants, real-time and batch scoring with explanations, model training, tuning and "
        "validation, imports and exports of a credit risk scoring service.\n\n"
        "**Authentication**: `Authorization: Token <key>` (API clients), or the portal's session cookie with "
        "its CSRF token.\n\n"
        "**Access**: granted per portfolio; an object of a portfolio you are not granted answers exactly like a "
        "missing one (404); an action your grant does not cover answers 403.\n\n"
        '**Errors**: every error has the body `{"error": {"code", "message", "details"}}` '
        "(component `ErrorResponse`): `code` is stable for programs, `message` is for people, `details` holds "
        "the field errors of a 400 or the wait of a 429.\n\n"
        "**Lists**: `?page=N&page_size=M` (default 50, at most 500); the filters of each list are its query "
        "parameters."
    ),
    "TAGS": [
        {"name": "Portfolios", "description": "Books of applicants; the unit of access. Real-time scoring."},
        {"name": "Schemas", "description": "Declared, versioned descriptions of applicant files."},
        {"name": "Applicants", "description": "Applicants of your portfolios and their scores."},
        {"name": "Scores", "description": "Stored decisions and their explanations."},
        {"name": "Models", "description": "Training, tuning, metrics and the four-eyes registry."},
        {"name": "Batch scoring", "description": "Scoring whole portfolios in chunks; exports."},
        {"name": "Imports", "description": "Uploading applicant, history and outcome files; reports."},
        {"name": "Audit", "description": "The append-only audit log (auditors only)."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ImportStatusEnum": "scoring.models.ImportJob.STATUS_CHOICES",
        "ImportKindEnum": "scoring.models.ImportJob.KIND_CHOICES",
        "ModelStatusEnum": "scoring.models.ModelVersion.STATUS_CHOICES",
        "ModelKindEnum": "scoring.models.ModelVersion.KIND_CHOICES",
        "RunStatusEnum": "scoring.models.BatchRun.STATUS_CHOICES",
    },
}

# --- Celery --------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # Producer and consumer share one folder: the web process drops messages, the
    # worker picks them up. No service is needed. The transport is kombu's, writing
    # each message atomically (riskapp/broker.py), under the URL's own scheme.
    from riskapp.broker import filesystem_transport_install

    filesystem_transport_install()
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # exchange bindings; defaults to ./control
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")  # progress lives in the database; results are optional
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Queues are named by resource: `train` (GPU when a worker has one), `score` (CPU
# batch work), `default`. A prefix lets test runs share a broker with a running
# service without stealing each other's messages.
CELERY_QUEUE_PREFIX = env_str("CELERY_QUEUE_PREFIX", "") or ""
CELERY_QUEUES_BY_ROLE = {role: f"{CELERY_QUEUE_PREFIX}{role}" for role in ("default", "score", "train")}
CELERY_TASK_DEFAULT_QUEUE = CELERY_QUEUES_BY_ROLE["default"]
# Declared rather than created on first use, so every broker (Redis, RabbitMQ, SQS, the
# filesystem) gets the same topology: one direct exchange per queue, routing key = name.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in CELERY_QUEUES_BY_ROLE.values()
]
CELERY_TASK_CREATE_MISSING_QUEUES = False  # a task routed to an undeclared queue is an error, not a silent new queue
if (CELERY_BROKER_URL or "").startswith("sqs://"):
    # SQS queues are created beforehand (by infrastructure code, named like CELERY_QUEUES_BY_ROLE)
    # and listed here, so the workers need no ListQueues/CreateQueue rights. Credentials come from
    # the default AWS chain (IRSA / pod identity / instance role) unless the broker URL carries keys.
    _sqs_url_base = env_str("CELERY_SQS_QUEUE_URL_BASE")
    if not _sqs_url_base:
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL=sqs:// needs CELERY_SQS_QUEUE_URL_BASE, e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/"
        )
    _sqs_url_region = next(iter(re.findall(r"//sqs\.([a-z0-9-]+)\.amazonaws\.com", _sqs_url_base)), None)
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        # https://sqs.<region>.amazonaws.com/<account>/ names its region; an explicit setting wins.
        "region": env_str("CELERY_SQS_REGION") or _sqs_url_region or "us-east-1",
        "wait_time_seconds": env_int("CELERY_SQS_WAIT_TIME_SECONDS", 10, minimum=0, maximum=20),  # long polling
        "polling_interval": 1,
        "predefined_queues": {
            name: {"url": _sqs_url_base.rstrip("/") + "/" + name} for name in CELERY_QUEUES_BY_ROLE.values()
        },
    }
    # Remote control and events need fan-out queues SQS does not offer with predefined queues.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_ROUTES = {
    "scoring.tasks.train_*": {"queue": CELERY_QUEUES_BY_ROLE["train"]},
    "scoring.tasks.tune_*": {"queue": CELERY_QUEUES_BY_ROLE["train"]},
    "scoring.tasks.score_*": {"queue": CELERY_QUEUES_BY_ROLE["score"]},
}
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6 * 3600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Torch threads of a process that scores (web and score workers). One request or chunk is
# small work: more threads per process only fight the other processes for the cores
# (measured: 2 threads made the CNN endpoint 5.8x slower under gunicorn on 2 cores).
TORCH_NUM_THREADS = env_int("TORCH_NUM_THREADS", 1, minimum=1)
# A batch-scoring chunk claimed longer ago than this is taken to have lost its worker.
SCORE_CHUNK_STALE_SECONDS = env_int("SCORE_CHUNK_STALE_SECONDS", 300, minimum=2)
# A chunk's write transaction (COPY and progress) is cancelled by PostgreSQL after this
# (statement and idle-in-transaction timeouts), so a stalled owner's locks are gone by
# the time its claim is stale and another worker takes the chunk over; a write waits at
# most SCORE_LOCK_TIMEOUT_SECONDS for a row lock before its task retries.
SCORE_WRITE_TIMEOUT_SECONDS = env_int(
    "SCORE_WRITE_TIMEOUT_SECONDS", min(60, max(1, SCORE_CHUNK_STALE_SECONDS // 2)), minimum=1
)
if SCORE_WRITE_TIMEOUT_SECONDS >= SCORE_CHUNK_STALE_SECONDS:
    raise ImproperlyConfigured("SCORE_WRITE_TIMEOUT_SECONDS must be below SCORE_CHUNK_STALE_SECONDS")
SCORE_LOCK_TIMEOUT_SECONDS = env_int("SCORE_LOCK_TIMEOUT_SECONDS", 5, minimum=1)
# A training, tuning trial or import renews a lease every JOB_STALE_SECONDS / 4; one whose
# lease is older than JOB_STALE_SECONDS lost its process and is marked failed.
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 120, minimum=2)
# How often every worker (its own timer) and beat run the supervisor (scoring.services.supervisor).
SUPERVISOR_INTERVAL_SECONDS = env_int("SUPERVISOR_INTERVAL_SECONDS", 30, minimum=1)
# Tasks retry a transient error (database or broker unreachable, a lock timeout) with
# backoff for this long after their first failure, not a number of times: a 10-minute
# outage drops nothing with the default of 30 minutes.
TASK_RETRY_BUDGET_SECONDS = env_int("TASK_RETRY_BUDGET_SECONDS", 1800, minimum=1)
TASK_RETRY_MAX_DELAY_SECONDS = env_int("TASK_RETRY_MAX_DELAY_SECONDS", 60, minimum=1)
# Decision events (scoring.services.webhooks): a receiver that does not answer 2xx is tried
# again with backoff and jitter (the tasks' retry helper) for this long after the first
# failure, then the delivery is marked failed (and can be redelivered). Short timeouts:
# a slow receiver must not hold a default worker.
WEBHOOK_RETRY_BUDGET_SECONDS = env_int("WEBHOOK_RETRY_BUDGET_SECONDS", 6 * 3600, minimum=1)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_int("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 600, minimum=1)
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env_int("WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3, minimum=1, maximum=60)
WEBHOOK_READ_TIMEOUT_SECONDS = env_int("WEBHOOK_READ_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
# A pending delivery due longer ago than this lost its message: the supervisor sends it again.
WEBHOOK_LOST_AFTER_SECONDS = env_int("WEBHOOK_LOST_AFTER_SECONDS", 300, minimum=2)
# Receivers on link-local addresses (169.254.0.0/16 with the cloud metadata service, fe80::/10)
# or the unspecified address are refused, when configured and again when sent (a name may
# resolve elsewhere later), unless this allows them.
WEBHOOK_ALLOW_LINK_LOCAL = env_bool("WEBHOOK_ALLOW_LINK_LOCAL", False)

# --- Monitoring and metrics ------------------------------------------------------
# A monitoring report looks at a seeded sample of at most this many applicants (PSI and
# approval rates are exact enough long before a million rows).
MONITORING_MAX_ROWS = env_int("MONITORING_MAX_ROWS", 200_000, minimum=1000)
# /metrics answers only with "Authorization: Bearer <token>" when set.
METRICS_BEARER_TOKEN = env_secret("METRICS_BEARER_TOKEN")
# A Celery worker serves its own /metrics on this port (0: off); see scoring/metrics.py.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0, maximum=65535)
# Mail (monitoring alerts to validators). Without EMAIL_HOST, mails are printed to the console.
EMAIL_HOST = env_str("EMAIL_HOST", "") or ""
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "riskapp@localhost") or "riskapp@localhost"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Security ------------------------------------------------------------------
# `python manage.py check --deploy` is clean with DEBUG off, SECRET_KEY, ALLOWED_HOSTS and
# HTTPS=true (tests/riskapp/test_hardening.py runs it).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)  # a working day, not Django's two weeks
CSRF_COOKIE_HTTPONLY = True  # no page script reads the token: forms carry it, the API uses tokens
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Served over TLS: cookies marked Secure, plain HTTP redirected, HSTS sent. Each can be
# set apart; by default they all follow HTTPS.
_https = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
# Probes reach the pod over plain HTTP from inside the cluster: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _https else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _https)
# Only allows submitting the domain to browsers' preload list; sending it commits to nothing.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _https)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

# Login throttle (scoring/backends.py): after LOGIN_FAILURE_LIMIT failed logins for one
# username within the window, that username is locked for LOGIN_LOCKOUT_SECONDS, the
# right password included; one client address gets LOGIN_IP_FAILURE_LIMIT (0: no limit).
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_IP_FAILURE_LIMIT = env_int("LOGIN_IP_FAILURE_LIMIT", 50, minimum=0)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)

# Content-Security-Policy (django-csp 4): our own origin only, and no inline script or
# style anywhere: pages load their JavaScript and CSS from static files. The API docs
# pages widen style-src for themselves (scoring/api/urls.py): their UI libraries inject styles.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Audit log and personal data ----------------------------------------------
# Checkpoints of the audit chain are signed with this key (HMAC-SHA256); old keys only verify.
AUDIT_SIGNING_KEY, AUDIT_SIGNING_OLD_KEYS = audit_signing_keys(VAR_DIR)
# The sealer (beat, every 5 s) must seal an event within this many seconds; verify and
# /readyz fail on an older unsealed event. Until sealed, only the trigger protects it.
AUDIT_SEAL_WINDOW_SECONDS = env_int("AUDIT_SEAL_WINDOW_SECONDS", 30, minimum=10, maximum=3600)
AUDIT_SEAL_BATCH = env_int("AUDIT_SEAL_BATCH", 1000, minimum=1, maximum=50_000)
# Signed heads of the chain, appended outside the database (a volume the database server
# cannot write): verify compares the chain with the newest, so a deleted tail is caught.
# One file per database: a fresh database does not inherit another's heads.
AUDIT_HEAD_FILE = Path(
    env_str("AUDIT_HEAD_FILE", "")
    or VAR_DIR / "audit" / f"heads-{Path(str(DATABASES['default']['NAME'])).stem or 'default'}.jsonl"
)
# Fernet keys of applicant PII, newest first. A key generated into var/ is only
# acceptable for development and the embedded (SQLite) default; a production
# database without PII_ENCRYPTION_KEYS refuses to start.
PII_ENCRYPTION_KEYS = pii_encryption_keys(
    VAR_DIR, debug=DEBUG, allow_generated=str(DATABASES["default"]["ENGINE"]).endswith("sqlite3")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"})},
}
