"""The ``gallring`` command: the one composition root that knows every service."""

import argparse
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import OperationalError

from services.api.api_keys import Scope
from services.cli import agent as agent_commands
from services.cli import forecast as forecast_command
from services.cli import keys as key_commands
from services.cli import policy as policy_commands
from services.cli import policy_diff as policy_diff_commands
from shared.domain.contract import event_json_schema
from shared.domain.contract.dates import RANGE_TEXT, ContractDate
from shared.domain.contract.topic_messages import topic_json_schema
from shared.domain.policy import PolicyError
from shared.runtime.settings import (
    DatabaseSettings,
    GallringSettings,
    SettingsInvalid,
    load_settings,
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (SettingsInvalid, PolicyError) as error:
        # A policy below its floors too: refused with its line, before a service starts.
        print(f"gallring: {error}", file=sys.stderr)
        return 2
    except OperationalError as error:
        # The driver's own first line: it names host and port, never the password; the whole
        # error would add the statement and its parameters.
        cause = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        print(
            f"gallring: the database failed: {type(error.orig).__name__}: {cause}", file=sys.stderr
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gallring", description="Keeps a privacy notice's erasure promises automatically."
    )
    commands = parser.add_subparsers(metavar="COMMAND")

    policy = commands.add_parser("policy", help="try the retention policy offline")
    policy_commands_ = policy.add_subparsers(metavar="ACTION", required=True)

    evaluate = policy_commands_.add_parser(
        "evaluate", help="print the retention clocks for a JSON-lines file of v1 events"
    )
    evaluate.add_argument("events", type=Path, help="JSON lines, one v1 event each; - for stdin")
    evaluate.add_argument(
        "--now",
        type=_aware_datetime,
        help="evaluate as of this ISO-8601 instant with a UTC offset (default: now)",
    )
    evaluate.add_argument("--policy", type=Path, help="a policy file (default: the built-in one)")
    evaluate.set_defaults(
        run=lambda a: policy_commands.evaluate_file(
            a.events, now=a.now, policy_path=a.policy, out=sys.stdout, err=sys.stderr
        )
    )

    check = policy_commands_.add_parser("check", help="validate a policy file")
    check.add_argument("file", type=Path)
    check.set_defaults(
        run=lambda a: policy_commands.check_file(a.file, out=sys.stdout, err=sys.stderr)
    )

    diff = policy_commands_.add_parser(
        "diff",
        help="how many clocks a new policy moves earlier or later or makes due at once, by "
        "category: OLD NEW --events FILE, or --database NEW",
    )
    diff.add_argument(
        "policies",
        nargs="+",
        type=Path,
        metavar="POLICY",
        help="OLD and NEW policy files with --events; NEW alone with --database",
    )
    against = diff.add_mutually_exclusive_group(required=True)
    against.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="JSON lines, one v1 event each, as `policy evaluate` reads them; - for stdin",
    )
    against.add_argument(
        "--database",
        action="store_true",
        help="compare the clocks the purger holds (GALLRING_DATABASE_URL) with NEW's verdicts "
        "on their facts; reads only",
    )
    diff.add_argument(
        "--now",
        type=_aware_datetime,
        help="with --events: evaluate as of this ISO-8601 instant with a UTC offset (default: now)",
    )
    diff.add_argument("--json", action="store_true", help="print JSON, for machines")
    diff.set_defaults(run=_policy_diff)

    agent = commands.add_parser(
        "agent", help="the erasure agent beside one of the company's databases"
    )
    agent_actions = agent.add_subparsers(metavar="ACTION", required=True)
    agent_check = agent_actions.add_parser(
        "check", help="validate a dataset file (which tables hold which category, and how)"
    )
    agent_check.add_argument("file", type=Path)
    agent_check.add_argument(
        "--connect",
        action="store_true",
        help="also check the tables and columns against the database the file names",
    )
    agent_check.set_defaults(
        run=lambda a: agent_commands.check_file(
            a.file, connect=a.connect, out=sys.stdout, err=sys.stderr
        )
    )
    agent_run = agent_actions.add_parser(
        "run",
        help="erase what the erasure commands name from the system's database, and confirm it "
        "(GALLRING_AGENT_… settings)",
    )
    agent_run.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="log the tables and row counts each command would erase; change nothing, confirm "
        "nothing (GALLRING_AGENT_DRY_RUN)",
    )
    agent_run.set_defaults(
        run=lambda a: agent_commands.run_agent(dry_run=a.dry_run, err=sys.stderr)
    )
    restore_check = agent_actions.add_parser(
        "restore-check",
        help="after the system's database was restored from a backup taken at --since, erase "
        "again what Gallring erased since then (GALLRING_AGENT_… settings)",
    )
    restore_check.add_argument(
        "--since",
        type=_aware_datetime,
        required=True,
        help="when the backup was taken, an ISO-8601 instant with a UTC offset (take it early "
        "rather than late: an erasure applied again erases nothing more)",
    )
    restore_check.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would be erased again; change nothing",
    )
    restore_check.set_defaults(
        run=lambda a: agent_commands.restore_check(
            since=a.since, dry_run=a.dry_run, out=sys.stdout, err=sys.stderr
        )
    )

    up = commands.add_parser(
        "up", help="start Gallring on the embedded default (SQLite, a local broker)"
    )
    up.add_argument(
        "--verbose",
        action="store_true",
        help="also the access log and the scheduler's line per run (GALLRING_QUIET_LIBRARIES)",
    )
    up.set_defaults(run=lambda a: _embedded_up(verbose=a.verbose))

    migrate = commands.add_parser(
        "migrate", help="bring the database schema up to date and exit (GALLRING_DATABASE_URL)"
    )
    migrate.set_defaults(run=_migrate)

    demo = commands.add_parser(
        "demo",
        help="post a day of events to a running Gallring (`gallring up`) and watch erasures "
        "executed and recipients told",
    )
    demo.add_argument(
        "--api",
        default=f"http://127.0.0.1:{os.environ.get('GALLRING_API_PORT', '8000')}",
        help="the API's address (default: http://127.0.0.1:8000, or GALLRING_API_PORT)",
    )
    demo.add_argument(
        "--api-key",
        default=os.environ.get("GALLRING_DEMO_API_KEY"),
        help="an admin key (default: GALLRING_DEMO_API_KEY, else a new key named gallring-demo "
        "in gallring up's SQLite database, GALLRING_DATABASE_URL)",
    )
    demo.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the erasures (120)"
    )
    demo.set_defaults(run=_run_demo)

    api = commands.add_parser("api", help="run the API service (settings from GALLRING_*)")
    api.set_defaults(run=_serve_api)

    purger = commands.add_parser(
        "purger", help="run the purger: clocks from Kafka, sweeps, erasures (GALLRING_*)"
    )
    purger.set_defaults(run=_run_purger)

    notifier = commands.add_parser(
        "notifier", help="run the notifier: signed deletion webhooks to recipients (GALLRING_*)"
    )
    notifier.set_defaults(run=_run_notifier)

    keys = commands.add_parser("keys", help="API keys for machine clients")
    key_actions = keys.add_subparsers(metavar="ACTION", required=True)
    create = key_actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="who uses it, e.g. collection-system")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        help=f"one of {', '.join(scope.value for scope in Scope)}; repeat for several",
    )
    create.set_defaults(
        run=lambda a: key_commands.create(_database_url(), a.name, a.scope, out=sys.stdout)
    )
    revoke = key_actions.add_parser("revoke", help="revoke every live key with this name")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(run=lambda a: key_commands.revoke(_database_url(), a.name, out=sys.stdout))
    listing = key_actions.add_parser("list", help="list keys (names and scopes, no secrets)")
    listing.set_defaults(run=lambda _: key_commands.list_keys(_database_url(), out=sys.stdout))
    reseal = key_actions.add_parser(
        "reseal",
        help="seal recipients' webhook signing secrets again under GALLRING_SECRET_SEALING_KEY "
        "(once, after setting it)",
    )
    reseal.set_defaults(
        run=lambda _: key_commands.reseal(load_settings(GallringSettings), out=sys.stdout)
    )

    forecast = commands.add_parser(
        "forecast", help="how many erasures fall due per month and category"
    )
    forecast.add_argument("--until", type=_contract_date, required=True, metavar="YYYY-MM-DD")
    forecast.set_defaults(
        run=lambda a: forecast_command.print_forecast(_database_url(), a.until, out=sys.stdout)
    )

    contract = commands.add_parser("contract", help="the v1 event contract")
    contract_commands = contract.add_subparsers(metavar="ACTION", required=True)
    schema = contract_commands.add_parser("schema", help="print the contract's JSON Schema")
    schema.set_defaults(run=lambda _: _print_json(event_json_schema()))
    topic_schema = contract_commands.add_parser(
        "topics", help="print the JSON Schema of every Kafka topic's messages"
    )
    topic_schema.set_defaults(run=lambda _: _print_json(topic_json_schema()))
    return parser


def _policy_diff(args: argparse.Namespace) -> int:
    wanted, usage = (1, "NEW with --database") if args.database else (2, "OLD NEW with --events")
    if len(args.policies) != wanted:
        print(f"gallring policy diff: give {usage}", file=sys.stderr)
        return 2
    if args.database:
        if args.now is not None:
            print(
                "gallring policy diff: --now goes with --events; --database compares as of now",
                file=sys.stderr,
            )
            return 2
        return policy_diff_commands.diff_database(
            _database_url(), args.policies[0], as_json=args.json, out=sys.stdout, err=sys.stderr
        )
    old, new = args.policies
    return policy_diff_commands.diff_events(
        old, new, args.events, now=args.now, as_json=args.json, out=sys.stdout, err=sys.stderr
    )


def _serve_api(_: argparse.Namespace) -> int:
    from services.api.main import serve  # imported here: `gallring policy` needs no web stack
    from services.api.settings import ApiSettings

    settings = load_settings(ApiSettings)
    settings.secret_box()  # refused before anything starts without the sealing key
    settings.policy()  # and with a policy that is invalid or below its floors
    serve(settings)
    return 0


def _run_purger(_: argparse.Namespace) -> int:
    from services.purger.main import serve
    from services.purger.settings import PurgerSettings

    settings = load_settings(PurgerSettings)
    settings.policy()  # refused before anything starts: invalid, or below its floors
    serve(settings)
    return 0


def _run_notifier(_: argparse.Namespace) -> int:
    from services.notifier.main import serve
    from services.notifier.settings import NotifierSettings

    settings = load_settings(NotifierSettings)
    settings.secret_box()  # refused before anything starts without the sealing key
    serve(settings)
    return 0


def _migrate(_: argparse.Namespace) -> int:
    """Run by a deployment once before the services start (they also migrate, finding nothing
    to do then), so that a failing migration stops the rollout before any service changes."""
    from shared.storage.migrate import upgrade

    upgrade(_database_url())
    print("gallring: the database schema is up to date", flush=True)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from services.cli.demo.command import run_demo  # imported here: aiohttp for the demo alone

    return run_demo(
        args.api, args.api_key, _database_url, timeout=args.timeout, out=sys.stdout, err=sys.stderr
    )


def _embedded_up(*, verbose: bool) -> int:
    from services.cli.up import up

    return up(verbose=verbose)


def _database_url() -> str:
    """Key commands and migrations need only the database, not the pseudonym secret."""
    return load_settings(DatabaseSettings).database_url


def _print_json(document: dict[str, Any]) -> int:
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2026-01-01T00:00:00Z")
    return value


_CONTRACT_DATE: TypeAdapter[date] = TypeAdapter(ContractDate)


def _contract_date(text: str) -> date:
    """A day as the API takes it (``YYYY-MM-DD``, in the contract's range): a day past it, such
    as 9999-12-31, would overflow the forecast's month arithmetic."""
    try:
        return _CONTRACT_DATE.validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"expected a day, YYYY-MM-DD, {RANGE_TEXT}") from None


if __name__ == "__main__":
    sys.exit(main())
