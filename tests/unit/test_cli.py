"""The ``gallring`` command as a user runs it."""

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.cli.main import main
from shared.domain.contract.examples import EXAMPLES
from shared.messaging.embedded_broker import free_loopback_port

REPO = Path(__file__).parents[2]
EXAMPLE_EVENTS = REPO / "docs" / "examples" / "events.jsonl"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_lines(tmp_path: Path, *events: dict | str) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return path


def test_evaluate_prints_the_clocks_of_each_subject_as_given(capsys) -> None:
    code, out, err = run(
        capsys, "policy", "evaluate", str(EXAMPLE_EVENTS), "--now", "2026-11-25T00:00:00Z"
    )
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [(r["subject"], r["category"], r["scope"], r["state"]) for r in rows] == [
        ({"national_id": "19811218-9876"}, "bookkeeping", {}, "pending"),
        ({"national_id": "19811218-9876"}, "collection_case", {"case_id": "C-2023-0001"}, "held"),
        ({"ref": "crm:4711"}, "marketing", {}, "erase_now"),
    ]
    assert set(rows[0]) == {
        "subject",
        "category",
        "scope",
        "state",
        "due_at",
        "rule",
        "legal_basis",
        "reason",
    }
    assert rows[0]["due_at"] == "2031-12-31T23:00:00Z"
    assert rows[1]["due_at"] == "2026-03-15T09:00:00Z"
    assert rows[2]["rule"] == "marketing.immediate"


def test_now_decides_whether_a_clock_is_pending_or_due(tmp_path, capsys) -> None:
    path = write_lines(tmp_path, EXAMPLES["collection_case.closed"])
    _, before, _ = run(capsys, "policy", "evaluate", str(path), "--now", "2026-03-15T08:59:59Z")
    _, after, _ = run(capsys, "policy", "evaluate", str(path), "--now", "2026-03-15T09:00:00Z")
    assert json.loads(before)[0]["state"] == "pending"
    assert json.loads(after)[0]["state"] == "due"


def test_evaluate_reads_a_custom_policy(tmp_path, capsys) -> None:
    policy = (
        (REPO / "shared/domain/policy/default_policy.yaml")
        .read_text()
        .replace(
            "retention: {months: 36}\n    triggers: [collection_case.closed]",
            "retention: {months: 12}\n    triggers: [collection_case.closed]",
        )
    )
    (tmp_path / "policy.yaml").write_text(policy)
    path = write_lines(tmp_path, EXAMPLES["collection_case.closed"])
    code, out, _ = run(
        capsys, "policy", "evaluate", str(path), "--policy", str(tmp_path / "policy.yaml")
    )
    assert code == 0
    assert json.loads(out)[0]["due_at"] == "2024-03-15T09:00:00Z"


def test_invalid_lines_exit_2_naming_each_line_without_echoing_identifiers(
    tmp_path, capsys
) -> None:
    bad_id = {**EXAMPLES["marketing.contact"], "subject": {"national_id": "19811218-9875"}}
    no_scope = {**EXAMPLES["collection_case.closed"], "scope": {}}
    path = write_lines(tmp_path, EXAMPLES["marketing.contact"], bad_id, "", "{oops", no_scope)
    code, out, err = run(capsys, "policy", "evaluate", str(path))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert (
        lines[0] == "line 2: subject.national_id: the check digit (the last digit) does not match"
    )
    assert lines[1] == (
        "line 4: not valid JSON: Expecting property name enclosed in double quotes (column 2)"
    )
    assert lines[2] == "line 5: scope: collection_case.closed needs scope.case_id"
    assert "19811218" not in err


def test_a_missing_events_file_exits_2(tmp_path, capsys) -> None:
    code, _, err = run(capsys, "policy", "evaluate", str(tmp_path / "absent.jsonl"))
    assert code == 2
    assert "cannot read" in err and "No such file or directory" in err


def test_now_without_an_offset_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["policy", "evaluate", str(EXAMPLE_EVENTS), "--now", "2026-01-01T00:00:00"])
    assert exited.value.code == 2
    assert "give a UTC offset" in capsys.readouterr().err


def test_policy_check_accepts_the_default_and_refuses_a_broken_file(tmp_path, capsys) -> None:
    code, out, _ = run(
        capsys, "policy", "check", str(REPO / "shared/domain/policy/default_policy.yaml")
    )
    assert code == 0 and "valid" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 2\n")
    code, _, err = run(capsys, "policy", "check", str(broken))
    assert code == 2
    assert f"{broken}:1: version: Input should be 1" in err


def test_the_installed_command_runs(tmp_path) -> None:
    gallring = Path(sys.executable).parent / "gallring"
    result = subprocess.run(
        [str(gallring), "policy", "evaluate", "-"],
        input=json.dumps(EXAMPLES["marketing.contact"]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["category"] == "marketing"


def test_one_person_written_two_ways_is_one_subject_named_as_first_given(tmp_path, capsys) -> None:
    short = {**EXAMPLES["collection_case.closed"], "subject": {"national_id": "811218-9876"}}
    long = {**EXAMPLES["bookkeeping.recorded"], "subject": {"national_id": "198112189876"}}
    code, out, _ = run(capsys, "policy", "evaluate", str(write_lines(tmp_path, short, long)))
    assert code == 0
    assert [row["subject"] for row in json.loads(out)] == [{"national_id": "811218-9876"}] * 2


def test_a_line_that_is_not_utf8_or_not_an_object_is_named(tmp_path, capsys) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(json.dumps(EXAMPLES["marketing.contact"]).encode() + b"\n\xff\xfe\n[1]\n")
    code, out, err = run(capsys, "policy", "evaluate", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "line 2: not valid UTF-8",
        "line 3: expected a JSON object, one event per line",
    ]


@pytest.mark.parametrize("service", ["api", "purger", "notifier"])
def test_a_service_without_its_settings_says_which_to_set_and_exits_2(
    service, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("GALLRING_PSEUDONYM_SECRET", raising=False)
    monkeypatch.delenv("GALLRING_SECRETS_DIR", raising=False)
    code, _, err = run(capsys, service)
    assert code == 2
    assert (
        err == "gallring: the settings are invalid:\n  GALLRING_PSEUDONYM_SECRET: Field required\n"
    )


@pytest.mark.parametrize("service", ["api", "notifier"])
def test_a_service_that_signs_refuses_to_start_without_the_sealing_key(
    service, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", "p" * 40)
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path / 'gallring.db'}")
    monkeypatch.delenv("GALLRING_SECRET_SEALING_KEY", raising=False)
    monkeypatch.delenv("GALLRING_SECRETS_DIR", raising=False)
    code, _, err = run(capsys, service)
    assert code == 2
    assert err.startswith(
        "gallring: GALLRING_SECRET_SEALING_KEY is not set (nor the file "
        "gallring_secret_sealing_key in GALLRING_SECRETS_DIR)"
    )
    assert not (tmp_path / "gallring.db").exists()  # refused before it migrated anything


def test_migrate_brings_the_named_database_up_to_date(tmp_path, monkeypatch, capsys) -> None:
    database = tmp_path / "gallring.db"
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{database}")
    assert run(capsys, "migrate")[0] == 0
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"alembic_version", "outbox_message", "retention_clock", "notification"} <= tables


def test_the_demo_says_to_start_gallring_first_when_nothing_answers(capsys) -> None:
    api = f"http://127.0.0.1:{free_loopback_port()}"
    code, _, err = run(capsys, "demo", "--api", api, "--api-key", "gal_x")
    assert code == 1
    assert err == (
        f"gallring demo: nothing answers at {api}: start Gallring first (`make run` in another "
        "terminal), or name its API with --api\n"
    )


@pytest.fixture
def ready_api() -> Iterator[str]:
    """Something that answers /readyz as a running API would, and nothing else."""

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_demo_without_a_key_says_where_it_looked_for_the_database(
    ready_api, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path}/var/gallring.db")
    code, _, err = run(capsys, "demo", "--api", ready_api)
    assert code == 1
    assert f"no Gallring database at {tmp_path}/var/gallring.db: run the demo" in err


def test_the_demo_makes_no_key_in_a_deployments_database(ready_api, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GALLRING_DATABASE_URL", "postgresql+psycopg://gallring@db.internal/g")
    code, _, err = run(capsys, "demo", "--api", ready_api)
    assert code == 1
    assert "makes a key of its own only in `gallring up`'s SQLite database" in err


def test_a_database_that_cannot_be_reached_is_one_line_without_the_url(monkeypatch, capsys) -> None:
    url = f"postgresql+psycopg://gallring:s3cret-pw@127.0.0.1:{free_loopback_port()}/gallring"
    monkeypatch.setenv("GALLRING_DATABASE_URL", url)
    code, _, err = run(capsys, "migrate")
    assert code == 1
    assert err.startswith("gallring: the database failed: OperationalError: connection failed")
    assert "s3cret-pw" not in err and "Traceback" not in err


def test_a_database_without_its_schema_says_so(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "empty.db").touch()
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = run(capsys, "keys", "list")
    assert (code, err) == (
        1,
        "gallring: the database failed: OperationalError: no such table: api_key\n",
    )


@pytest.mark.parametrize("until", ["9999-12-31", "0", "1899-12-31", "2030-13-01"])
def test_forecast_until_a_day_out_of_range_is_refused_before_counting(until, capsys) -> None:
    """9999-12-31 overflowed the month arithmetic with a traceback; 0 is no day."""
    with pytest.raises(SystemExit) as exited:
        main(["forecast", "--until", until])
    assert exited.value.code == 2
    assert (
        "expected a day, YYYY-MM-DD, between 1900-01-01 and 2199-12-31" in capsys.readouterr().err
    )
