"""The ``gallring`` command: the one composition root that knows every service."""

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from services import policy_commands
from shared.contract import event_json_schema


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return args.run(args)


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

    contract = commands.add_parser("contract", help="the v1 event contract")
    contract_commands = contract.add_subparsers(metavar="ACTION", required=True)
    schema = contract_commands.add_parser("schema", help="print the contract's JSON Schema")
    schema.set_defaults(run=_print_schema)
    return parser


def _print_schema(_: argparse.Namespace) -> int:
    print(json.dumps(event_json_schema(), indent=2, sort_keys=True))
    return 0


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 instant: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2026-01-01T00:00:00Z")
    return value


if __name__ == "__main__":
    sys.exit(main())
