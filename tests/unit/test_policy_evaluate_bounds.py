"""``gallring policy evaluate`` on dates and numbers past what it can count: a line each, exit 2,
never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.cli.main import main
from shared.domain.contract.examples import EXAMPLES

REPO = Path(__file__).parents[2]
GALLRING = str(Path(sys.executable).parent / "gallring")


def test_dates_out_of_range_and_a_huge_number_are_lines_of_their_own(tmp_path: Path) -> None:
    lines = [
        json.dumps({**EXAMPLES["bookkeeping.recorded"], "data": {"fiscal_year_end": "9999-12-31"}}),
        json.dumps({**EXAMPLES["marketing.contact"], "occurred_at": "0001-01-01T00:00:00+14:00"}),
        '{"type": "marketing.contact", "x": ' + "1" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    # The installed command, as a user runs it: what it prints is all there is to see.
    result = subprocess.run(
        [GALLRING, "policy", "evaluate", str(path)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "line 1: data.fiscal_year_end: must lie between 1900-01-01 and 2199-12-31",
        "line 2: occurred_at: must lie between 1900-01-01 and 2199-12-31 (UTC)",
        "line 3: not valid JSON: a number has too many digits",
        "line 4: not valid JSON: nested too deeply",
    ]


def test_a_due_date_past_the_calendar_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The events' dates are bounded, a policy's periods and --now are not."""
    policy = (
        (REPO / "shared/domain/policy/default_policy.yaml")
        .read_text()
        .replace(
            "retention: {months: 36}\n    triggers: [collection_case.closed]",
            "retention: {years: 8000}\n    triggers: [collection_case.closed]",
        )
    )
    (tmp_path / "policy.yaml").write_text(policy)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(EXAMPLES["collection_case.closed"]) + "\n")
    argv = ["policy", "evaluate", str(events), "--policy", str(tmp_path / "policy.yaml")]
    code = main(argv)
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == (
        "gallring: a due date falls outside the calendar (years 1 to 9999); "
        "check --now and the retention periods of the policy\n"
    )
