"""The Dockerfile's install step replayed without Docker: the build context as .dockerignore
leaves it, the build stage's COPY instructions, and its `pip install .` as a wheel build, so a
test can look into what the image would install."""

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.deployment import files


@dataclass(frozen=True)
class IgnoreRule:
    pattern: re.Pattern[str]
    text: str
    negated: bool


def ignore_rules(root: Path) -> list[IgnoreRule]:
    """.dockerignore's lines, in order; `!` lets in again what an earlier line kept out."""
    rules = []
    for line in (root / files.DOCKERIGNORE).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        text = line.removeprefix("!").strip().strip("/")
        rules.append(IgnoreRule(re.compile(_glob_to_regex(text)), text, negated))
    return rules


def _glob_to_regex(glob: str) -> str:
    """Docker's patterns: `**` any directories, `*` and `?` within one name, `[…]` a set."""
    regex, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif glob[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif glob[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif glob[i] == "[" and "]" in glob[i:]:
            end = glob.index("]", i)
            regex, i = regex + glob[i : end + 1].replace("[!", "[^"), end + 1
        else:
            regex, i = regex + re.escape(glob[i]), i + 1
    return regex + "$"


def is_ignored(path: str, rules: list[IgnoreRule]) -> bool:
    """As Docker decides: the last rule that matches the path, or one of its parents, wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.pattern.match(candidate) for candidate in candidates):
            ignored = not rule.negated
    return ignored


def build_context(source_root: Path, rules: list[IgnoreRule]) -> set[str]:
    """The files of ``source_root`` that the build context holds. An ignored directory is not
    entered unless a `!` rule could let something inside it in again."""
    reincluding = [rule.text for rule in rules if rule.negated]
    context: set[str] = set()

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            relative = entry.relative_to(source_root).as_posix()
            if entry.is_dir() and not entry.is_symlink():
                if not is_ignored(relative, rules) or any(
                    text.startswith(relative + "/") or text.startswith("*") for text in reincluding
                ):
                    walk(entry)
            elif not is_ignored(relative, rules):
                context.add(relative)

    walk(source_root)
    return context


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
