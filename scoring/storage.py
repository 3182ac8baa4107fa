"""Where files live: model artifacts, uploaded import files and exports, each through
a Django storage alias of ``settings.STORAGES`` (``artifacts``, ``uploads``,
``exports``). Local folders by default; an S3-compatible bucket (django-storages)
when ``AWS_STORAGE_BUCKET_NAME`` is set. Which backend is one entry of ``STORAGES``:
callers ask :func:`storage` for an alias and use Django's storage API only.

A name in a storage (``portfolio-3/v2-mlp-1a2b3c4d5e6f.pt``) is what rows record,
never an absolute path: the same row reads the same object from any machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage, storages

ARTIFACTS = "artifacts"
UPLOADS = "uploads"
EXPORTS = "exports"


def storage(alias: str) -> Storage:
    return storages[alias]


class SettingFolderStorage(FileSystemStorage):
    """A local folder named by a setting (``ARTIFACT_DIR``, ``MEDIA_ROOT``...) plus a
    sub-folder, read at each use: an operator's or a test's change of the setting moves
    the storage with it, as FileSystemStorage does for MEDIA_ROOT."""

    def __init__(self, *, setting: str, subfolder: str = "", **kwargs):
        self.setting, self.subfolder = setting, subfolder
        super().__init__(**kwargs)

    @property
    def base_location(self) -> str:
        return os.path.join(os.fspath(getattr(settings, self.setting)), self.subfolder)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


def local_path(store: Storage, name: str) -> Path | None:
    """The object's path on this machine, or None for a storage without paths (S3)."""
    try:
        return Path(store.path(name))
    except NotImplementedError:
        return None


def files_walk(store: Storage, folder: str = "") -> Iterator[str]:
    """Every file name under ``folder`` (recursively), as the storage names them."""
    try:
        folders, files = store.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}" if folder else name
    for sub in folders:
        yield from files_walk(store, f"{folder}/{sub}" if folder else sub)


@contextmanager
def readable_file(store: Storage, name: str) -> Iterator[Path]:
    """A path a library can open for the object ``name``: its own path on local storage,
    else a private temporary copy under the same file name (a 0700 folder of the
    system's temporary directory, the file 0600), deleted when the block ends."""
    path = local_path(store, name)
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="riskapp-") as folder:
        copy = Path(folder) / Path(name).name
        descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out, store.open(name, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
        yield copy
