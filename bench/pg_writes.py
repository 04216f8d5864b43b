"""What PostgreSQL wrote while a benchmark ran: WAL bytes, and rows inserted, updated and deleted
by table (``pg_stat_user_tables``), per unit of work. Where a database's CPU goes is mostly in
what it is asked to write: these tell which tables a pipeline's event costs and how much."""

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Written:
    """What the database had written: WAL bytes, and rows inserted, updated, deleted by table."""

    wal_bytes: int
    rows: dict[str, tuple[int, int, int]]

    def __sub__(self, earlier: "Written") -> "Written":
        rows = {}
        for table, counts in self.rows.items():
            then = earlier.rows.get(table, (0, 0, 0))
            change = tuple(now - was for now, was in zip(counts, then, strict=True))
            if any(change):
                rows[table] = (change[0], change[1], change[2])
        return Written(self.wal_bytes - earlier.wal_bytes, rows)

    def report(self, units: int, unit: str) -> list[str]:
        """Lines: WAL bytes per ``unit``, then each table's rows per ``unit``."""
        lines = [f"    {self.wal_bytes / units:,.0f} WAL bytes per {unit}"]
        for table, (inserted, updated, deleted) in sorted(self.rows.items()):
            lines.append(
                f"    {table:<28} {inserted / units:5.2f} inserted, {updated / units:5.2f} "
                f"updated, {deleted / units:5.2f} deleted per {unit}"
            )
        return lines


def written(conninfo: str) -> Written:
    """What the database of ``conninfo`` has written so far: its WAL, and the counts sessions
    have reported (a busy session at most once a second, an idle one within ten seconds)."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        wal = connection.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        rows = connection.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        ).fetchall()
    assert wal is not None
    return Written(int(wal[0]), {table: (ins, upd, dele) for table, ins, upd, dele in rows})
