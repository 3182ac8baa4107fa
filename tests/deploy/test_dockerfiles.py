"""The images (docker/Dockerfile for CPU, docker/Dockerfile.gpu for CUDA), read as text:
`docker build` cannot run on this machine (no Docker engine), so these tests pin down what
the files must say: two stages, an unprivileged user, the torch build of the pinned version."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from tests.deploy.conftest import DOCKER, ROOT

DOCKERFILES = {"cpu": DOCKER / "Dockerfile", "gpu": DOCKER / "Dockerfile.gpu"}


def instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def torch_pin() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if d.startswith("torch")]
    return pin


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_image_is_built_in_stages(kind):
    stages = [args for keyword, args in instructions(DOCKERFILES[kind]) if keyword == "FROM"]
    assert len(stages) >= 2
    # The runtime stage copies the virtualenv out of the build stage, not the compilers.
    copies = [args for keyword, args in instructions(DOCKERFILES[kind]) if keyword == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_runtime_stage_runs_as_an_unprivileged_user(kind):
    steps = instructions(DOCKERFILES[kind])
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    users = [args for keyword, args in steps[last_from:] if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(keyword == "RUN" and f"--uid {user}" in args for keyword, args in steps[last_from:])
    # The code is not the user's to change; only var/ and /data are.
    assert ("COPY", ". .") in steps[last_from:]
    assert any("chown -R riskapp:riskapp /app/var /data" in args for _, args in steps[last_from:])


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_image_has_a_health_check_and_a_command_that_exist(kind):
    steps = dict(instructions(DOCKERFILES[kind]))
    assert "/app/docker/start/healthcheck" in steps["HEALTHCHECK"]
    command = re.search(r'"/app/(docker/start/\w+)"', steps["CMD"]).group(1)
    assert (ROOT / command).exists()


def test_no_secret_generated_at_build_time_stays_in_the_image():
    steps = instructions(DOCKERFILES["cpu"])
    (collect,) = [args for keyword, args in steps if keyword == "RUN" and "collectstatic" in args]
    assert "find /app/var -mindepth 1 -maxdepth 1 ! -name static -exec rm -rf {} +" in collect


def test_the_torch_pin_is_the_version_the_images_install():
    assert torch_pin() == "torch==2.13.0"


def test_the_cpu_image_installs_the_cpu_build_of_torch_2_13_0():
    runs = [args for keyword, args in instructions(DOCKERFILES["cpu"]) if keyword == "RUN"]
    assert any("--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in args for args in runs)
    # Installed before the project, so `pip install .` finds the pin satisfied and keeps it.
    torch_step = next(i for i, args in enumerate(runs) if "torch==2.13.0" in args)
    project_step = next(i for i, args in enumerate(runs) if re.search(r"pip install \.( |$)", args))
    assert torch_step < project_step
    assert any("torch.version.cuda is None" in args for args in runs)


def test_the_gpu_image_swaps_in_the_cuda_build_of_the_same_torch():
    text = DOCKERFILES["gpu"].read_text()
    assert re.search(r"CPU\s+pin is swapped for the CUDA wheel of the SAME version", text.replace("#", ""))
    runs = [args for keyword, args in instructions(DOCKERFILES["gpu"]) if keyword == "RUN"]
    assert any('--index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" torch==2.13.0' in args for args in runs)
    cuda = re.search(r"^ARG TORCH_CUDA=(cu\d+)$", text, flags=re.MULTILINE)
    assert cuda, "TORCH_CUDA must default to a cuXYZ variant"
    assert any("torch.version.cuda, torch.__version__" in args for args in runs)


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_the_build_context_leaves_out_local_state_and_secrets(kind):
    ignore = (DOCKERFILES[kind].parent / f"{DOCKERFILES[kind].name}.dockerignore").read_text().split()
    for entry in (".git", ".venv", "var", ".env"):
        assert entry in ignore


@pytest.mark.parametrize("script", ["web", "worker", "beat", "healthcheck", "dev"])
def test_start_scripts_are_executable_bash(script):
    path = DOCKER / "start" / script
    assert path.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
