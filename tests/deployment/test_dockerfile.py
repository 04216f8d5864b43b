"""The Dockerfile, read by BuildKit's parser and its install step replayed without Docker: it
runs `gallring` as a fixed non-root user, every command the deployments give it is a real
subcommand, and the wheel it installs holds what the services need at run time."""

import argparse
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from services.cli.main import _parser
from shared.storage.migrate import alembic_config
from tests.deployment import files
from tests.deployment.image_build import (
    build_context,
    cached_wheel,
    console_scripts,
    context_rules,
    install_stage,
    lay_out_sources,
)
from tests.deployment.workloads import ENTRYPOINT, all_workloads, default_command

#: Every instruction BuildKit knows; the parser passes unknown ones through.
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.base.name",
)
#: What must stay out of the build context (and so out of the image).
PRIVATE_PATHS = (
    ".venv/bin/python",
    "var/gallring.db",
    "var/pseudonym_secret",
    ".git/config",
    "tests/conftest.py",
    "bench/api_bench.py",
    "deploy/secrets/gallring_pseudonym_secret",
    "shared/runtime/__pycache__/settings.cpython-311.pyc",
    ".pytest_cache/README.md",
    ".ruff_cache/CACHEDIR.TAG",
)
#: What the services read from their installed package at run time.
RUNTIME_FILES = (
    "services/cli/main.py",
    "shared/domain/policy/default_policy.yaml",
    "shared/storage/migrations/env.py",
    "shared/storage/migrations/script.py.mako",
)


def gallring_subcommands() -> set[str]:
    """The subcommands `gallring` knows, from its own argument parser."""
    [subparsers] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(subparsers.choices)


def runtime_problems(root: Path) -> list[str]:
    """The final stage's user, entry point, command, health check and labels."""
    runtime = files.dockerfile_stages(root)[-1]
    last = {i.cmd: i for i in runtime}  # Docker heeds the last USER, ENTRYPOINT, HEALTHCHECK
    problems = [f"unknown instruction {i.cmd}" for i in runtime if i.cmd not in INSTRUCTIONS]
    user = last["USER"].value[0] if "USER" in last else "root"
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or int(uid) == 0 or (gid and (not gid.isdigit() or int(gid) == 0)):
        problems.append(f"USER {user}: not a fixed non-root uid:gid (runAsNonRoot needs numbers)")
    entrypoint = last.get("ENTRYPOINT")
    if entrypoint is None or not entrypoint.json or tuple(entrypoint.value) != ENTRYPOINT:
        # The shell form would run `/bin/sh -c gallring`: no arguments, and no SIGTERM for it.
        problems.append(f"ENTRYPOINT is not {list(ENTRYPOINT)} in exec form")
    if "HEALTHCHECK" not in last or last["HEALTHCHECK"].value[0] != "CMD":
        problems.append("no HEALTHCHECK CMD")
    labels = _labels(runtime)
    problems += [f"no LABEL {label}" for label in OCI_LABELS if label not in labels]
    if labels.get("org.opencontainers.image.version") != files.project_version():
        problems.append(f"LABEL version is not the project's {files.project_version()}")
    base = runtime[0].value[0]
    if not labels.get("org.opencontainers.image.base.name", "").endswith(base):
        problems.append(f"LABEL base.name does not name the base image {base}")
    return problems


def _labels(stage: list) -> dict[str, str]:
    """LABEL key=value pairs; the parser gives them as key, value, key, value…"""
    words = [w.strip('"') for i in stage if i.cmd == "LABEL" for w in i.value]
    return dict(zip(words[::2], words[1::2], strict=True))


def unknown_subcommands(root: Path) -> list[str]:
    """Commands the deployments (and the image's default) give `gallring` that it lacks."""
    known = gallring_subcommands()
    problems = [
        f"{w.where}: entrypoint {list(w.entrypoint)} is not the image's {list(ENTRYPOINT)}"
        for w in all_workloads(root)
        if w.entrypoint != ENTRYPOINT
    ]
    commands = [(f"{files.DOCKERFILE}: CMD", default_command(root))]
    commands += [(w.where, w.command) for w in all_workloads(root)]
    problems += [
        f"{where}: `gallring {' '.join(command)}` is no gallring subcommand"
        for where, command in commands
        if not command or command[0] not in known
    ]
    return problems


def context_problems(root: Path) -> list[str]:
    rules = context_rules(root)
    return [f"{files.DOCKERIGNORE}: {problem}" for problem in rules.problems] + [
        f"{path} would be in the build context"
        for path in PRIVATE_PATHS
        if not rules.keeps_out(path)
    ]


def install_problems(root: Path) -> list[str]:
    """The install step installs the project itself, without test extras."""
    command = install_stage(root).install_command
    targets = [word for word in command[command.index("install") + 1 :] if not word.startswith("-")]
    if targets != ["."]:
        return [f"`{' '.join(command)}` should install `.` alone (no extras), not {targets}"]
    return []


def laid_out_project(root: Path, work: Path, sources: Path = files.REPO) -> tuple[Path, list[str]]:
    """The build stage's directory as the Dockerfile under ``root`` fills it, and its problems.

    ``root`` gives the Dockerfile and the .dockerignore; the files they copy (pyproject.toml,
    README.md, shared/, services/) come from ``sources``, the repository by default: a test's
    broken copy holds the deployment files alone, and borrows the sources it builds from."""
    stage = install_stage(root)
    context = build_context(sources, context_rules(root))
    image_root = work / "image"
    problems = lay_out_sources(stage, sources, context, image_root)
    return image_root / stage.install_directory.relative_to("/"), problems


def wheel_problems(root: Path, work: Path, wheels: Path, sources: Path = files.REPO) -> list[str]:
    """Lay the build stage out as the Dockerfile under ``root`` does (with the files of
    ``sources``), build its wheel (``wheels`` caches it) and look inside."""
    project, problems = laid_out_project(root, work, sources)
    if problems:
        return problems
    try:
        wheel = cached_wheel(project, wheels)
    except subprocess.CalledProcessError as failure:
        return [f"the wheel does not build: {failure.stderr.decode()[-2000:]}"]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    migrations = sorted(p.relative_to(sources).as_posix() for p in _migration_files(sources))
    problems += [
        f"the wheel lacks {name}" for name in [*RUNTIME_FILES, *migrations] if name not in names
    ]
    if console_scripts(wheel).get("gallring") != "services.cli.main:main":
        problems.append("the wheel has no console script gallring = services.cli.main:main")
    return problems


def _migration_files(sources: Path) -> list[Path]:
    return sorted((sources / "shared/storage/migrations/versions").glob("*.py"))


def test_the_dockerfile_parses_and_its_final_stage_is_right() -> None:
    assert runtime_problems(files.REPO) == []


def test_every_command_is_a_gallring_subcommand() -> None:
    assert {"api", "purger", "notifier", "migrate"} <= gallring_subcommands()
    assert unknown_subcommands(files.REPO) == []


def test_the_build_context_keeps_private_and_local_files_out() -> None:
    assert context_problems(files.REPO) == []


def test_the_image_installs_the_project_without_test_extras() -> None:
    assert install_problems(files.REPO) == []


def test_the_install_step_builds_a_wheel_with_what_the_services_need(
    tmp_path: Path, wheel_cache: Path
) -> None:
    assert wheel_problems(files.REPO, tmp_path, wheel_cache) == []


def test_the_installed_package_alone_migrates_a_database(tmp_path: Path, wheel_cache: Path) -> None:
    """`gallring migrate` from the wheel's files, not the work tree's: the migrations and
    Alembic's template travel with the package. The wheel is the one the test above looked
    into (built once, whichever of the two runs first)."""
    project, problems = laid_out_project(files.REPO, tmp_path)
    assert problems == []
    wheel = cached_wheel(project, wheel_cache)
    installed = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    database = tmp_path / "gallring.db"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GALLRING_")}
    environment["GALLRING_DATABASE_URL"] = f"sqlite:///{database}"
    run_from_wheel = (
        "import sys; sys.path.insert(0, sys.argv[1]); import services.cli.main as cli; "
        "assert cli.__file__.startswith(sys.argv[1]), cli.__file__; sys.exit(cli.main(['migrate']))"
    )
    subprocess.run(
        [sys.executable, "-c", run_from_wheel, str(installed)],
        cwd=tmp_path,
        env=environment,
        check=True,
        timeout=60,
    )
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (files.DOCKERFILE, "USER 10001:10001", "USER root", "not a fixed non-root uid"),
        (files.DOCKERFILE, "USER 10001:10001", "USER gallring", "not a fixed non-root uid"),
        (files.DOCKERFILE, 'ENTRYPOINT ["gallring"]', "ENTRYPOINT gallring", "ENTRYPOINT"),
        (files.DOCKERFILE, "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "HEALTHCHECK"),
        (files.DOCKERFILE, 'version="0.1.0"', 'version="0.0.9"', "LABEL version"),
        (
            files.DOCKERFILE,
            "FROM python:3.11.14-slim-bookworm AS runtime",
            "FROM python:3.11.15-slim-bookworm AS runtime",
            "LABEL base.name",
        ),
    ],
)
def test_a_wrong_final_stage_is_caught(
    deployment_copy: Path, path: str, old: str, new: str, expected: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    problems = runtime_problems(deployment_copy)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (files.COMPOSE_FILE, 'command: ["migrate"]', 'command: ["migrations"]'),
        (files.COMPOSE_FILE, 'command: ["api"]', 'command: ["gallring", "api"]'),
        ("deploy/kubernetes/purger-deployment.yaml", 'args: ["purger"]', 'command: ["purger"]'),
        (files.DOCKERFILE, 'CMD ["api"]', 'CMD ["serve"]'),
    ],
)
def test_a_command_gallring_lacks_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert unknown_subcommands(deployment_copy)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("**/__pycache__\n**/*.py[cod]\n", ""),
        ("*\n!pyproject.toml", "!pyproject.toml"),
        ("!services\n", "!services\n!tests\n"),
        ("**/.hypothesis", "**/.hypothesis\n!var"),
        ("!services\n", "!services\n.venv\n"),
    ],
)
def test_a_leaky_dockerignore_is_caught(deployment_copy: Path, old: str, new: str) -> None:
    files.break_file(deployment_copy, files.DOCKERIGNORE, old, new)
    assert context_problems(deployment_copy)


def test_test_extras_in_the_image_are_caught(deployment_copy: Path) -> None:
    files.break_file(
        deployment_copy,
        files.DOCKERFILE,
        "pip install --no-cache-dir .",
        "pip install --no-cache-dir '.[test]'",
    )
    assert install_problems(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (files.DOCKERIGNORE, "!services\n", "", "COPY services: not in the build context"),
        (
            files.DOCKERFILE,
            "COPY services ./services\n",
            "",
            "the wheel lacks services/cli/main.py",
        ),
        (files.DOCKERFILE, "COPY pyproject.toml README.md ./\n", "", "does not build"),
    ],
)
def test_an_install_step_short_of_sources_is_caught(
    deployment_copy: Path,
    tmp_path: Path,
    wheel_cache: Path,
    path: str,
    old: str,
    new: str,
    expected: str,
) -> None:
    files.break_file(deployment_copy, path, old, new)
    problems = wheel_problems(deployment_copy, tmp_path / "work", wheel_cache)
    assert any(expected in problem for problem in problems), problems
