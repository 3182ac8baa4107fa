"""``models`` is pure PyTorch/numpy: importing all of it loads no Django, Celery or app code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, json, pkgutil, sys
import models
names = sorted(m.name for m in pkgutil.iter_modules(models.__path__))
for name in names:
    importlib.import_module("models." + name)
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"django", "celery", "scoring", "riskapp", "rest_framework"})
print(json.dumps({"modules": names, "forbidden": loaded}))
"""


def test_importing_every_models_module_loads_no_django_celery_or_app_code():
    # A fresh interpreter: the test process itself has Django loaded by pytest-django.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"features", "networks", "training", "calibration", "metrics", "scaling", "artifacts", "splits"} <= set(
        report["modules"]
    )
    assert report["forbidden"] == []
