"""Model artifacts: one file, a JSON config plus a ``state_dict``, no pickle.

The file is ``torch.save({"config_json": str, "state_dict": {name: tensor}})`` — only
strings and tensors, which ``torch.load(weights_only=True)`` reads without
unpickling arbitrary objects. It is written to a temporary file in the target
directory and renamed into place, so a reader never sees half a file. Its SHA-256 is
returned by ``write`` and must be given to ``read``, which checks it on the bytes
*before* parsing anything and refuses a mismatch with ``ArtifactIntegrityError``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import torch

# 1: first format: torch file of {"config_json", "state_dict"}; config has kind, hyper-parameters,
#    network arguments, static/history pipelines, Platt calibration, training record, metrics.
# Paths, bytes and binary file objects are all accepted (so artifacts can go through Django storage).
FORMAT_VERSION = 1


class ArtifactIntegrityError(Exception):
    """The artifact's bytes do not have the recorded SHA-256: tampered, truncated or the wrong file."""


class ArtifactFormatError(Exception):
    """The artifact is intact but not something this code can read (unknown format version...)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Target = str | os.PathLike[str] | IO[bytes]
Source = str | os.PathLike[str] | bytes | IO[bytes]


def to_bytes(config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> bytes:
    """The artifact's bytes (what ``write`` stores and hashes)."""
    config = {**config, "format_version": FORMAT_VERSION}
    payload = {
        # allow_nan=False: the config must be plain JSON that any reader accepts.
        "config_json": json.dumps(config, sort_keys=True, allow_nan=False),
        "state_dict": {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def put(target: Target, data: bytes) -> str:
    """Store ``data`` at a path (atomically) or write it to a binary file object
    (a Django ``File``, ``BytesIO``...); return its SHA-256."""
    if isinstance(target, (str, os.PathLike)):
        return write_bytes_atomically(target, data)
    target.write(data)
    return sha256_bytes(data)


def get(source: Source) -> bytes:
    """The bytes of an artifact given as a path, the bytes themselves, or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    return source.read()


def verified(source: Source, expected_sha256: str) -> bytes:
    """The artifact's bytes, read once and checked against the recorded SHA-256
    before anything parses them (``ArtifactIntegrityError`` otherwise)."""
    if not expected_sha256:
        raise ArtifactIntegrityError("no expected SHA-256 given: refusing to load an unverified artifact")
    data = get(source)
    actual = sha256_bytes(data)
    if not hmac.compare_digest(actual, expected_sha256.lower()):
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "given"
        raise ArtifactIntegrityError(
            f"artifact {name!r} has SHA-256 {actual}, expected {expected_sha256}: refusing to load it"
        )
    return data


def write(target: Target, config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> str:
    """Write the artifact (atomically to a path, or to a binary file object); return its SHA-256 (hex)."""
    return put(target, to_bytes(config, state_dict))


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> str:
    """Write to a temporary file beside ``path``, fsync, rename into place; return the SHA-256.
    A reader never sees a half-written file, and a crash leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256_bytes(data)


def read(source: Source, expected_sha256: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The (config, state_dict) of a verified artifact (path, bytes or binary file), tensors on the CPU."""
    data = verified(source, expected_sha256)  # read once: the bytes checked are the bytes parsed
    payload = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    if not isinstance(payload, dict) or set(payload) != {"config_json", "state_dict"}:
        raise ArtifactFormatError("the artifact is not a network model artifact")
    config = json.loads(payload["config_json"])
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactFormatError(f"artifact format version {version!r}; this code reads {FORMAT_VERSION}")
    return config, payload["state_dict"]


def load_model(source: Source, expected_sha256: str, *, device: str = "cpu", kind: str = "mlp"):
    """A fitted model of family ``kind`` from a verified artifact."""
    from models.families import family_of  # the families import this module

    return family_of(kind).load(source, expected_sha256, device=device)
