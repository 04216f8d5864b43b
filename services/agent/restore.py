"""``gallring agent restore-check --since T``: after the system's database was restored from a
backup taken at T, erase again what Gallring erased since then.

Gallring keeps no identifier of an erased person, only the erasure's proof: the hash of the
pseudonym and the clock hash (pseudonym, category and scope). The agent asks the API for the
proofs of the erasures executed since T in the categories its dataset holds
(``GET /v1/erasures/proofs``, the scope ``erasures:confirm`` its key has), brings its index up to
date with a full pass (the restored database's rows are the backup's; an index in a database of
its own is newer than they are, and its marks are past them), and erases each proven clock as a
command re-published by its proof is erased (:class:`ProvenClock`), each in its own
transaction. A proof whose rows are not there (never held, or erased before T) erases nothing.

It confirms nothing: each erasure was confirmed (or is confirmed by the running agent) when its
command was first applied, and the restore does not change what Gallring was told; the report,
per category and table, says what was erased again. It names categories, tables, counts and the
ids of erasures that failed, never a pseudonym or a row.
"""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO
from uuid import UUID

from pydantic import SecretStr
from sqlalchemy import Engine

from services.agent import index
from services.agent.confirm import USER_AGENT
from services.agent.erase import (
    ErasureCounts,
    ErasureFailed,
    ProvenClock,
    erase_in_transactions_of_its_own,
)
from services.agent.schema import BoundDataset
from shared.domain.pseudonym import Pseudonymiser

log = logging.getLogger(__name__)
PAGE_SIZE = 500


class ProofsUnavailable(Exception):
    """The API did not give the proofs (away, or it refused the key): nothing was erased."""


@dataclass(frozen=True)
class Proof:
    erasure_id: UUID
    category: str
    subject_hash: str
    clock_hash: str | None
    executed_at: datetime


def fetch_proofs(
    api_url: str,
    api_key: SecretStr,
    since: datetime,
    categories: Iterable[str],
    *,
    timeout: float,
    page_size: int = PAGE_SIZE,
) -> Iterator[Proof]:
    """Every proof of an erasure of these categories executed at or after ``since``, a page at a
    time; :class:`ProofsUnavailable` if the API does not answer them."""
    base = f"{api_url.rstrip('/')}/v1/erasures/proofs"
    params: list[tuple[str, str]] = [
        ("executed_since", since.isoformat()),
        ("limit", str(page_size)),
    ] + [("category", category) for category in sorted(categories)]
    cursor: str | None = None
    while True:
        query = params + ([("cursor", cursor)] if cursor else [])
        page = _get(f"{base}?{urllib.parse.urlencode(query)}", api_key, timeout)
        for item in page["proofs"]:
            yield Proof(
                erasure_id=UUID(item["erasure_id"]),
                category=item["category"],
                subject_hash=item["subject_hash"],
                clock_hash=item["clock_hash"],
                executed_at=datetime.fromisoformat(item["executed_at"]),
            )
        cursor = page["next_cursor"]
        if not cursor:
            return


def _get(url: str, api_key: SecretStr, timeout: float) -> dict:
    request = urllib.request.Request(  # noqa: S310 (the operator's own API URL, http or https)
        url,
        headers={
            "authorization": f"Bearer {api_key.get_secret_value()}",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        hint = " (the key needs the scope erasures:confirm)" if error.code in (401, 403) else ""
        raise ProofsUnavailable(f"the API answered {error.code}{hint}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ProofsUnavailable(f"the API did not answer ({type(error).__name__})") from None


@dataclass
class CategoryReport:
    """One category's proofs: how many, how many found rows to erase again, rows per table."""

    proofs: int = 0
    erased_again: int = 0
    without_clock: int = 0  # proofs older than clock hashes: nothing to find their rows by
    tables: dict[str, int] = field(default_factory=dict)


@dataclass
class RestoreReport:
    since: datetime
    dry_run: bool
    categories: dict[str, CategoryReport] = field(default_factory=dict)
    failed: list[tuple[UUID, str]] = field(default_factory=list)

    def write(self, out: TextIO) -> None:
        done = "would erase again" if self.dry_run else "erased again"
        total = sum(report.proofs for report in self.categories.values())
        print(
            f"restore check since {self.since.isoformat()}: {total} erasure"
            f"{'s' if total != 1 else ''} executed since then in the categories held"
            + (" (dry run: nothing changed)" if self.dry_run else ""),
            file=out,
        )
        for category, report in sorted(self.categories.items()):
            rows = ", ".join(f"{table} {count}" for table, count in report.tables.items())
            line = (
                f"  {category}: {report.proofs} erasure{'s' if report.proofs != 1 else ''}, "
                f"{report.erased_again} {done}; rows per table: {rows or 'none'}"
            )
            if report.without_clock:
                line += f"; {report.without_clock} without a clock hash (not re-applied)"
            print(line, file=out)
        for erasure_id, reason in self.failed:
            print(f"  failed: erasure {erasure_id}: {reason}", file=out)


def restore_check(
    bound: BoundDataset,
    proofs: Iterable[Proof],
    *,
    system: Engine,
    index_engine: Engine,
    pseudonymiser: Pseudonymiser,
    since: datetime,
    dry_run: bool = False,
) -> RestoreReport:
    """A full index pass, then each proof of a category the dataset holds erased again in its
    own transaction. A proof that cannot be applied (:class:`ErasureFailed`) is reported and the
    rest go on."""
    index.index_pass(
        bound, system=system, index=index_engine, pseudonymiser=pseudonymiser, full=True
    )
    report = RestoreReport(since=since, dry_run=dry_run)
    for category in bound.categories:
        report.categories[category.value] = CategoryReport()
    for proof in proofs:
        if not bound.holds(proof.category):
            continue
        held = report.categories[proof.category]
        held.proofs += 1
        if proof.clock_hash is None:
            held.without_clock += 1
            continue
        target = ProvenClock(proof.subject_hash, proof.clock_hash)
        try:
            counts = _erase(bound, system, index_engine, pseudonymiser, proof, target, dry_run)
        except ErasureFailed as error:
            report.failed.append((proof.erasure_id, error.reason))
            log.warning("agent: restore check: erasure %s failed: %s", proof.erasure_id, error)
            continue
        for table, erased in counts.tables.items():
            held.tables[table] = held.tables.get(table, 0) + erased
        if counts.total:
            held.erased_again += 1
            log.info(
                "agent: restore check: erasure %s (%s) %s rows per table %s",
                proof.erasure_id,
                proof.category,
                "would erase again" if dry_run else "erased again",
                counts.tables,
            )
    return report


def _erase(
    bound: BoundDataset,
    system: Engine,
    index_engine: Engine,
    pseudonymiser: Pseudonymiser,
    proof: Proof,
    target: ProvenClock,
    dry_run: bool,
) -> ErasureCounts:
    """As the consumer erases a command."""
    return erase_in_transactions_of_its_own(
        bound,
        system,
        index_engine,
        category=proof.category,
        target=target,
        pseudonymiser=pseudonymiser,
        dry_run=dry_run,
    )
