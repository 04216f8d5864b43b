"""``gallring policy diff --database NEW``: what a new policy would do to the clocks the purger
holds, counted before it is applied, and nothing in the database changed by counting."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import DBAPIError

from services.cli.main import main
from services.purger.handlers import handle_batch
from services.purger.policy_diff import diff_stored_clocks, read_only_snapshot
from services.purger.policy_refresh import refresh_stale_verdicts
from shared.domain.engine import RetentionEngine
from shared.domain.policy.loader import parse_policy
from shared.storage.tables.purger import StoredClock, SubjectFact
from shared.storage.tables.table import table_of
from tests.integration.purger.helpers import RETENTION, Subject, ago, policy_with_case_period

CASE = {"case_id": "C-1"}


def halved_policy() -> str:
    """The default policy with collection-case data kept 18 months instead of 36."""
    return policy_with_case_period(18)


def clocks_held_by_the_purger(db: Engine) -> None:
    """Clocks stored through the purger's own consumer code, under the default policy: three
    cases closed 24 months ago (due in a year; overdue at 18 months), one closed 6 months ago,
    one closed 24 months ago under a legal hold, and a marketing contact."""
    messages = []
    for _ in range(3):
        messages.append(Subject().message("collection_case.closed", ago(months=24), CASE))
    messages.append(Subject().message("collection_case.closed", ago(months=6), CASE))
    held = Subject()
    messages.append(held.message("collection_case.closed", ago(months=24), CASE))
    messages.append(held.message("legal_hold.placed", ago(months=20), data={"hold_id": "H-1"}))
    messages.append(Subject().message("marketing.contact", ago(months=2)))
    handle_batch(db, RETENTION, messages, datetime.now(UTC))


def everything_stored(db: Engine) -> tuple[list, list]:
    clocks, facts = table_of(StoredClock), table_of(SubjectFact)
    with db.connect() as connection:
        return (
            connection.execute(select(clocks).order_by(clocks.c.id)).all(),
            connection.execute(select(facts).order_by(facts.c.event_id)).all(),
        )


def test_the_diff_counts_the_clocks_a_halved_period_would_make_due_and_changes_nothing(
    fresh_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    clocks_held_by_the_purger(fresh_db)
    before = everything_stored(fresh_db)
    new = tmp_path / "halved.yaml"
    new.write_text(halved_policy())
    monkeypatch.setenv("GALLRING_DATABASE_URL", fresh_db.url.render_as_string(hide_password=False))

    code = main(["policy", "diff", "--database", str(new), "--json"])

    captured = capsys.readouterr()
    assert (code, captured.err) == (0, "")
    report = json.loads(captured.out)
    assert (report["old"], report["new"], report["subjects"]) == (None, str(new), 6)
    zero = dict.fromkeys(["earlier", "later", "unchanged", "new", "gone", "due_at_once"], 0)
    assert report["categories"]["collection_case"] == {
        **zero,
        "clocks": 5,
        "earlier": 5,
        "due_at_once": 3,  # not the recent case, not the held one
    }
    assert report["categories"]["marketing"] == {**zero, "clocks": 1, "unchanged": 1}
    assert report["total"]["due_at_once"] == 3
    assert everything_stored(fresh_db) == before


def test_a_person_reads_the_count_in_a_table(
    fresh_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    clocks_held_by_the_purger(fresh_db)
    new = tmp_path / "halved.yaml"
    new.write_text(halved_policy())
    monkeypatch.setenv("GALLRING_DATABASE_URL", fresh_db.url.render_as_string(hide_password=False))

    assert main(["policy", "diff", "--database", str(new)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"the clocks the purger holds -> {new}: 6 subject(s), as of ")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:9]}
    assert rows["collection_case"] == ["5", "5", "0", "0", "0", "0", "3"]
    assert lines[9] == (
        f"3 clock(s) fall due at once under {new}: the first sweep after it is applied erases "
        "their data."
    )


def test_batches_of_subjects_count_each_clock_once_and_match_what_applying_it_does(
    fresh_db: Engine,
) -> None:
    clocks_held_by_the_purger(fresh_db)
    halved = RetentionEngine(parse_policy(halved_policy(), source="halved"))
    now = datetime.now(UTC)

    one_by_one = diff_stored_clocks(fresh_db, halved, now, batch_size=1)
    at_once = diff_stored_clocks(fresh_db, halved, now)

    assert one_by_one.subjects == at_once.subjects == 6
    assert one_by_one.by_category == at_once.by_category
    # Applied for real (the purger's hourly refresh), it makes as many clocks due as counted.
    refreshed = refresh_stale_verdicts(fresh_db, halved, batch_size=10)
    assert refreshed.erasable_clocks == at_once.total.due_at_once == 3
    # Once applied, the clocks the purger holds are what the policy says: nothing moves.
    after = diff_stored_clocks(fresh_db, halved, datetime.now(UTC), batch_size=2)
    assert (after.total.unchanged, after.total.clocks, after.total.due_at_once) == (6, 6, 0)


def test_the_diff_reads_in_transactions_the_database_keeps_from_writing(fresh_db: Engine) -> None:
    clocks_held_by_the_purger(fresh_db)
    before = everything_stored(fresh_db)
    with pytest.raises(DBAPIError), read_only_snapshot(fresh_db) as connection:
        connection.execute(delete(table_of(StoredClock)))
    assert everything_stored(fresh_db) == before
    # The pool's connections write again afterwards.
    with fresh_db.begin() as connection:
        connection.execute(delete(table_of(StoredClock)))
    assert everything_stored(fresh_db)[0] == []
