"""``gallring policy …``: try the engine offline on a file of events, or check a policy file
(``diff``: :mod:`services.cli.policy_diff`)."""

import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from shared.domain.contract import LifecycleEvent, parse_event
from shared.domain.contract.errors import describe
from shared.domain.engine import RetentionClock, RetentionEngine
from shared.domain.policy import Policy, PolicyError, load_default_policy, load_policy
from shared.domain.policy.floors import describe as describe_retention
from shared.domain.pseudonym import Pseudonymiser

EXIT_INVALID_INPUT = 2


@dataclass
class EventsFile:
    """A file of events grouped by subject, under a throwaway pseudonym each (nothing is
    stored), with each subject as first written, for output."""

    by_subject: dict[str, list[LifecycleEvent]] = field(default_factory=dict)
    subjects: dict[str, dict[str, str]] = field(default_factory=dict)


def read_events(events_path: Path) -> tuple[EventsFile, list[str]]:
    """The events of a JSON-lines file (``-``: stdin), or, per bad line, what is wrong with it;
    ``OSError`` when it cannot be read."""
    parsed, problems = _parse_lines(_read_lines(events_path))
    pseudonymiser = Pseudonymiser(os.urandom(32))
    events = EventsFile()
    for event, subject_as_given in parsed:
        pseudonym = event.subject.pseudonym(pseudonymiser)
        events.by_subject.setdefault(pseudonym, []).append(event)
        events.subjects.setdefault(pseudonym, subject_as_given)
    return events, problems


def outside_the_calendar(error: OverflowError | ValueError) -> bool:
    """Whether evaluating failed on a due date past the year 9999. The events' dates are bounded
    by the contract, but ``--now`` and a policy's periods are not (datetime raises OverflowError,
    or ValueError "year … is out of range")."""
    return isinstance(error, OverflowError) or "out of range" in str(error)


OUTSIDE_THE_CALENDAR = (
    "gallring: a due date falls outside the calendar (years 1 to 9999); "
    "check --now and the retention periods of the policy"
)


def evaluate_file(
    events_path: Path, *, now: datetime | None, policy_path: Path | None, out: TextIO, err: TextIO
) -> int:
    """Print every subject's clocks for a JSON-lines file; 2 if a line or the policy is bad."""
    try:
        policy = _policy(policy_path)
        events, problems = read_events(events_path)
    except (PolicyError, OSError) as error:
        print(f"gallring: {describe_error(error)}", file=err)
        return EXIT_INVALID_INPUT
    if problems:
        print("\n".join(problems), file=err)
        return EXIT_INVALID_INPUT

    engine = RetentionEngine(policy)
    evaluated_at = now or datetime.now(UTC)
    try:
        rows = [
            _clock_row(clock, events.subjects[pseudonym])
            for pseudonym, subject_events in events.by_subject.items()
            for clock in engine.evaluate(pseudonym, subject_events, evaluated_at)
        ]
    except (OverflowError, ValueError) as error:
        if not outside_the_calendar(error):
            raise
        print(OUTSIDE_THE_CALENDAR, file=err)
        return EXIT_INVALID_INPUT
    rows.sort(
        key=lambda row: (_canonical(row["subject"]), row["category"], _canonical(row["scope"]))
    )
    json.dump(rows, out, indent=2, ensure_ascii=False)
    out.write("\n")
    return 0


def _parse_lines(
    lines: Iterable[tuple[int, bytes]],
) -> tuple[list[tuple[LifecycleEvent, dict[str, str]]], list[str]]:
    """Each valid event with its subject as written; or, per bad line, what is wrong with it."""
    parsed: list[tuple[LifecycleEvent, dict[str, str]]] = []
    problems: list[str] = []
    for number, raw in lines:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"line {number}: not valid UTF-8")
            continue
        if not text.strip():
            continue
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON: {error.msg} (column {error.colno})")
            continue
        except ValueError:  # a number past Python's limit on digits (int_max_str_digits)
            problems.append(f"line {number}: not valid JSON: a number has too many digits")
            continue
        except RecursionError:
            problems.append(f"line {number}: not valid JSON: nested too deeply")
            continue
        if not isinstance(document, dict):
            problems.append(f"line {number}: expected a JSON object, one event per line")
            continue
        try:
            parsed.append((parse_event(document), document["subject"]))
        except ValidationError as error:
            problems.extend(f"line {number}: {problem}" for problem in describe(error))
    return parsed, problems


def check_file(policy_path: Path, *, out: TextIO, err: TextIO) -> int:
    """Validate a policy file: its shape, and its floors (a period below one is refused with
    its line, exit 2, as S3's compliance mode refuses to shorten a retention)."""
    try:
        policy = load_policy(policy_path)
    except PolicyError as error:
        print(str(error), file=err)
        return EXIT_INVALID_INPUT
    floors = "; ".join(
        f"{category} {describe_retention(floor.at_least)}"
        for category, floor in policy.floors.items()
    )
    print(
        f"{policy_path}: valid; categories: {', '.join(policy.categories)}; "
        f"floors: {floors or 'none'}",
        file=out,
    )
    return 0


def _policy(path: Path | None) -> Policy:
    return load_policy(path) if path is not None else load_default_policy()


def _read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    if str(path) == "-":
        yield from enumerate(sys.stdin.buffer, start=1)
        return
    with path.open("rb") as stream:
        yield from enumerate(stream, start=1)


def _clock_row(clock: RetentionClock, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "subject": subject,
        "category": clock.category.value,
        "scope": clock.scope_dict,
        "state": clock.state.value,
        "due_at": clock.due_at.strftime("%Y-%m-%dT%H:%M:%SZ") if clock.due_at else None,
        "rule": clock.rule,
        "legal_basis": clock.legal_basis,
        "reason": clock.reason,
    }


def _canonical(value: dict[str, str]) -> str:
    return json.dumps(value, sort_keys=True)


def describe_error(error: Exception) -> str:
    if isinstance(error, OSError):
        return f"cannot read {error.filename}: {error.strerror}"
    return str(error)
