"""The Dockerfile's install step replayed without Docker: the build context as .dockerignore
leaves it, the build stage's COPY instructions, and its `pip install .` as a wheel build, so a
test can look into what the image would install."""

import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from tests.deployment import files

#: Characters that make a .dockerignore name a pattern.
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class ContextRules:
    """.dockerignore read as the allow-list it is: ``*`` first (everything out), then ``!NAME``
    lines letting top-level files or directories in, then ``**/GLOB`` lines keeping names out
    at any depth inside them. Docker's general matching (any later line overriding any earlier
    one, patterns with slashes) is not replayed: a line of another shape is a problem here, so
    that the file stays one this reading describes exactly."""

    allowed: frozenset[str]
    excluded: tuple[str, ...]
    problems: tuple[str, ...]

    def keeps_out(self, path: str) -> bool:
        """Whether the build context leaves ``path`` (relative, with slashes) out."""
        parts = PurePosixPath(path).parts
        return parts[0] not in self.allowed or any(
            fnmatchcase(part, glob) for part in parts for glob in self.excluded
        )


def context_rules(root: Path) -> ContextRules:
    """.dockerignore's lines, and what in them this reading cannot vouch for."""
    lines = [
        line.strip()
        for line in (root / files.DOCKERIGNORE).read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    allow_list = lines[:1] == ["*"]
    problems = [] if allow_list else ["the first pattern is not `*`: no allow-list"]
    allowed, excluded = set(), []
    for line in lines[1:] if allow_list else lines:
        name = line.removeprefix("!").rstrip("/")
        if line.startswith("!") and "/" not in name and not _GLOB.search(name):
            allowed.add(name)
            if excluded:
                problems.append(f"{line}: after a `**/` line, it would let in what that kept out")
        elif line.startswith("**/") and "/" not in line.removeprefix("**/"):
            excluded.append(line.removeprefix("**/"))
        else:
            problems.append(f"{line}: neither `!NAME` nor `**/GLOB`, not read by this check")
    return ContextRules(frozenset(allowed), tuple(excluded), tuple(problems))


def build_context(source_root: Path, rules: ContextRules) -> set[str]:
    """The files of ``source_root`` that the build context holds."""
    context = set()
    for name in rules.allowed:
        path = source_root / name
        candidates = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        context |= {p.relative_to(source_root).as_posix() for p in candidates}
    return {relative for relative in context if not rules.keeps_out(relative)}


@dataclass
class BuildStage:
    """The stage that installs the project: where its COPYs put what, and its pip command."""

    #: Sources and destination as written, and the WORKDIR a relative destination is under.
    copies: list[tuple[tuple[str, ...], str, PurePosixPath]] = field(default_factory=list)
    install_command: list[str] = field(default_factory=list)
    install_directory: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))


def install_stage(root: Path) -> BuildStage:
    """The first stage with a `pip install`, and what it copies from the context before it."""
    for stage in files.dockerfile_stages(root):
        found = BuildStage()
        workdir = PurePosixPath("/")
        for instruction in stage:
            if instruction.cmd == "WORKDIR":
                workdir = workdir / instruction.value[0]
            elif instruction.cmd == "COPY" and not any(
                flag.startswith("--from") for flag in instruction.flags
            ):
                *sources, destination = instruction.value
                found.copies.append((tuple(sources), destination, workdir))
            elif instruction.cmd == "RUN" and "pip install" in instruction.value[0]:
                found.install_command = shlex.split(instruction.value[0])
                found.install_directory = workdir
                return found
    raise AssertionError("no build stage runs `pip install`")


def lay_out_sources(
    stage: BuildStage, source_root: Path, context: set[str], image_root: Path
) -> list[str]:
    """Copy what the stage's COPYs copy into ``image_root`` (the image's /); the problems."""
    problems = []
    for sources, written_destination, workdir in stage.copies:
        # As Docker reads it: several sources, or a trailing slash, make it a directory.
        into_directory = len(sources) > 1 or written_destination.endswith("/")
        destination = workdir / written_destination
        for source in sources:
            source = source.strip("/").removeprefix("./")
            inside = sorted(f for f in context if f == source or f.startswith(source + "/"))
            if not inside:
                problems.append(f"COPY {source}: not in the build context (.dockerignore?)")
            for relative in inside:
                if relative == source:  # a file
                    target = destination / Path(source).name if into_directory else destination
                else:  # a directory's contents go into the destination
                    target = destination / relative.removeprefix(source + "/")
                path = image_root / target.relative_to("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source_root / relative, path)
    return problems


def build_wheel(project_directory: Path, wheel_directory: Path) -> Path:
    """`pip install .` as a wheel: offline, with the setuptools the test extra installs."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheel_directory),
            str(project_directory),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = wheel_directory.glob("*.whl")
    return wheel


def cached_wheel(project_directory: Path, cache_directory: Path) -> Path:
    """`build_wheel`, once per content of ``project_directory``: a tree of the same files
    (paths and bytes) as one built before gets that wheel again; any other tree, a broken copy's
    included, is built. A build that fails leaves nothing in the cache."""
    digest = hashlib.sha256()
    for path in sorted(p for p in project_directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(project_directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    wheel_directory = cache_directory / digest.hexdigest()
    if not wheel_directory.is_dir():
        building = cache_directory / f"{digest.hexdigest()}.building"
        shutil.rmtree(building, ignore_errors=True)
        build_wheel(project_directory, building)
        building.rename(wheel_directory)
    [wheel] = wheel_directory.glob("*.whl")
    return wheel


def console_scripts(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        [entry_points] = [
            n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")
        ]
        lines = archive.read(entry_points).decode().splitlines()
    scripts, section = {}, None
    for line in lines:
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "console_scripts":
            name, target = (part.strip() for part in line.split("=", 1))
            scripts[name] = target
    return scripts
