"""Where a benchmark's CPU went, by component, from Linux ``/proc``: the pipeline's processes,
PostgreSQL's and the broker's, against what the machine's CPUs could give in the same time.

A target a bench misses on this machine is either the code's (a component spends too much per
event) or the machine's (its CPUs are all busy): this tells them apart, and says how many
microseconds of CPU an event may cost in all for a given rate on a given number of CPUs.
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children alive now."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _fields(stat)
        if fields and (stat.parent.name == str(pid) or fields[1] == str(pid)):
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICKS


def command_seconds(command: str) -> float:
    """CPU time of every process named ``command`` (``comm``), with their ended children's (a
    server's ended sessions are in its ``cutime``): for PostgreSQL, all its clusters' work."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        text = _read(stat)
        if text is None or text.split("(", 1)[1].rsplit(")", 1)[0] != command:
            continue
        fields = text.rsplit(")", 1)[1].split()
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs, not idle nor waiting for I/O)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / TICKS


@dataclass(frozen=True)
class Budget:
    """CPU seconds by component over ``elapsed`` seconds of wall time."""

    seconds: dict[str, float]
    machine_busy: float
    elapsed: float

    def report(self, events: int, target_rate: float) -> list[str]:
        """Lines: each component's CPU per event; the machine's use; the rate its CPUs allow at
        this cost, and the cost per event ``target_rate`` would allow."""
        cpus = os.cpu_count() or 1
        accounted = sum(self.seconds.values())
        lines = [
            f"  {name:<12} {seconds / events * 1e6:>8,.0f} us/event  ({seconds:,.1f} s)"
            for name, seconds in self.seconds.items()
        ]
        lines.append(f"  {'all of them':<12} {accounted / events * 1e6:>8,.0f} us/event")
        lines.append(
            f"  the machine: {self.machine_busy / self.elapsed:.2f} of {cpus} CPUs busy on "
            f"average ({self.machine_busy - accounted:,.1f} s outside these components)"
        )
        per_event = self.machine_busy / events
        lines.append(
            f"  at {per_event * 1e6:,.0f} us of machine CPU per event, {cpus} CPUs allow at most "
            f"{cpus / per_event:,.0f} events/s; {target_rate:,.0f} events/s would need "
            f"<= {cpus / target_rate * 1e6:,.0f} us per event here, or "
            f"{per_event * target_rate:,.1f} CPUs at this cost"
        )
        return lines


class CpuMeter:
    """Reads components' CPU at :meth:`start` and :meth:`stop`."""

    def __init__(self, components: Mapping[str, Callable[[], float]]) -> None:
        self._components = dict(components)
        self._started: dict[str, float] = {}
        self._busy = 0.0
        self._at = 0.0

    def start(self, now: float) -> None:
        self._started = {name: read() for name, read in self._components.items()}
        self._busy, self._at = machine_busy_seconds(), now

    def stop(self, now: float) -> Budget:
        return Budget(
            {name: read() - self._started[name] for name, read in self._components.items()},
            machine_busy_seconds() - self._busy,
            now - self._at,
        )


def _read(stat: Path) -> str | None:
    try:
        return stat.read_text()
    except OSError:
        return None  # a process that ended meanwhile


def _fields(stat: Path) -> list[str] | None:
    text = _read(stat)
    return text.rsplit(")", 1)[1].split() if text else None
