"""``gallring up`` as a newcomer runs it: a real process on the embedded default (SQLite under
``./var/``, its own Tansu broker), stopped with Ctrl-C as a terminal sends it (SIGINT to the
whole process group), then started again on the same data."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from shared.embedded_broker import free_loopback_port

GALLRING = str(Path(sys.executable).parent / "gallring")
FIRST_KEY = "A first admin API key"


PORTS = ("api", "broker", "purger_metrics", "notifier_metrics")


def start(workdir: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GALLRING_")}
    env.update(
        GALLRING_API_PORT=str(ports["api"]),
        GALLRING_EMBEDDED_BROKER_PORT=str(ports["broker"]),
        GALLRING_PURGER_METRICS_PORT=str(ports["purger_metrics"]),
        GALLRING_NOTIFIER_METRICS_PORT=str(ports["notifier_metrics"]),
        GALLRING_KAFKA_SESSION_TIMEOUT_MS="2000",
        GALLRING_KAFKA_HEARTBEAT_INTERVAL_MS="500",
    )
    return subprocess.Popen(
        [GALLRING, "up"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )


def wait_until_running(
    ports: dict[str, int], process: subprocess.Popen[str], *, workers: bool = True
) -> None:
    """The API ready and, with ``workers``, both workers serving their metrics and a moment more
    for their consumers to join their groups."""
    paths = [(ports["api"], "/readyz")]
    if workers:
        paths += [(ports["purger_metrics"], "/metrics"), (ports["notifier_metrics"], "/metrics")]
    deadline = time.monotonic() + 60
    for port, path in paths:
        while True:
            assert process.poll() is None, process.communicate(timeout=30)[0]
            assert time.monotonic() < deadline, f"nothing answered on {port}{path}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
    if workers:
        time.sleep(3)


def stop(process: subprocess.Popen[str], ports: dict[str, int], signum: int) -> str:
    """``signum`` to the process group, as a terminal sends Ctrl-C (SIGINT) or its hang-up
    (SIGHUP), or as kill sends SIGTERM; what it printed. Everything it started is gone after
    it, and nothing went wrong."""
    os.killpg(process.pid, signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert " ERROR " not in output and "Traceback" not in output, output
    for port in ports.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still taken"
    return output


def run_once(
    workdir: Path, ports: dict[str, int], signum: int, *, workers_running: bool = True
) -> str:
    process = start(workdir, ports)
    try:
        wait_until_running(ports, process, workers=workers_running)
        return stop(process, ports, signum)
    finally:
        kill_session(process.pid)  # after a failure: it, and what it started, gone


def kill_session(session: int) -> None:
    """SIGKILL to every process of ``session``: ``gallring up`` leads it, and its broker and
    workers stay in it (in process groups of their own)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[3]) == session:  # after the command: state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def test_ctrl_c_a_hang_up_or_kill_stop_everything_cleanly_and_a_new_start_reuses_the_data(
    tmp_path: Path,
) -> None:
    ports = {name: free_loopback_port() for name in PORTS}
    assert FIRST_KEY in run_once(tmp_path, ports, signal.SIGINT)
    # Again on the same data (the same database, its key kept); Ctrl-C as soon as the API
    # answers, while the workers may still be starting.
    assert FIRST_KEY not in run_once(tmp_path, ports, signal.SIGINT, workers_running=False)
    run_once(tmp_path, ports, signal.SIGHUP)  # the terminal closed
    run_once(tmp_path, ports, signal.SIGTERM)  # kill, or docker stop
