"""``gallring up``'s embedded broker kept running: started again on its port when it dies.

The embedded Tansu broker is one process holding everything in memory. Should it die (a crash,
the OOM killer, a stray kill), nothing would move any more: the relay could not publish, the
workers could not read, and nothing would say why. :class:`BrokerKeeper` watches it from a thread
of its own, starts it again on the same port within a second or so, says so on one line, and
creates Gallring's topics at once: the first client to ask the new broker about a topic would
otherwise have Tansu create it with its own default of 4 partitions, not the settings' count.

A broker that keeps dying has a cause that starting it again only hides: past
``max_restarts`` within ``within_seconds`` the keeper gives up, says so, and tells its owner.

The watching thread starts the broker again, so a broker it started ends when that thread does
(the parent-death signal goes to the thread that started the child, see
:mod:`shared.runtime.child_process`): the thread therefore lives until
:meth:`BrokerKeeper.stop`, which stops the broker anyway, and never ends on an exception of its own.
"""

import asyncio
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from shared.messaging import topics
from shared.messaging.embedded_broker import BrokerStartError, EmbeddedBroker
from shared.messaging.kafka import ensure_topics
from shared.runtime.settings import KafkaSettings

#: How long creating the topics on a new broker may take before the keeper lets the services
#: create them as they reconnect (as they do on any new connection).
TOPICS_TIMEOUT_SECONDS = 10.0


def _tell(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class BrokerKeeper:
    """Watches a started :class:`EmbeddedBroker` and starts it again when it dies."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        kafka: KafkaSettings,
        *,
        on_give_up: Callable[[], None],
        tell: Callable[[str], None] = _tell,
        max_restarts: int = 5,
        within_seconds: float = 60.0,
        check_every_seconds: float = 0.2,
    ) -> None:
        """``kafka``: the settings the services use, for the topics' partitions and retention.
        ``on_give_up``: called from the watching thread once the keeper has given up.
        ``tell``: where its lines go (standard error: they are for whoever runs it)."""
        self._broker = broker
        self._kafka = kafka
        self._on_give_up = on_give_up
        self._tell = tell
        self._max_restarts = max_restarts
        self._within_seconds = within_seconds
        self._check_every_seconds = check_every_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.gave_up = False

    def start(self) -> None:
        """Watch from now on (the broker is started already)."""
        # A daemon: should this process end without stop(), the thread does not hold it up;
        # the broker it started ends with it (its parent-death signal).
        self._thread = threading.Thread(target=self._watch, name="broker-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, then stop the broker: none outlives its owner."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._broker.stop()

    def _watch(self) -> None:
        try:
            self._keep_running()
        except Exception as error:  # noqa: BLE001 - said, and given up: the thread must not die silently
            self._give_up(f"the broker keeper failed ({type(error).__name__}: {error})")

    def _keep_running(self) -> None:
        restarts: deque[float] = deque()
        ended: int | None = None  # the exit code of a broker not running again yet
        while not self._stopping.wait(self._check_every_seconds):
            if ended is None:
                ended = self._broker.poll()
                if ended is None:
                    continue
            now = time.monotonic()
            while restarts and now - restarts[0] > self._within_seconds:
                restarts.popleft()
            if len(restarts) >= self._max_restarts:
                self._give_up(
                    f"the embedded broker stopped ({_how_it_ended(ended)}) {len(restarts) + 1} "
                    f"times within {self._within_seconds:g} s"
                )
                return
            restarts.append(now)
            if self._restart(ended):
                ended = None

    def _restart(self, ended: int) -> bool:
        """The broker started again on its port with Gallring's topics; False if it did not."""
        where = self._broker.bootstrap_servers
        self._broker.stop()  # what is left of the old one: its exit collected
        try:
            self._broker.start()
        except BrokerStartError as error:
            self._tell(
                f"gallring: the embedded broker stopped ({_how_it_ended(ended)}) and did not "
                f"start again on {where} ({error})"
            )
            return False
        topics_note = ""
        try:
            asyncio.run(self._create_topics())
        except Exception as error:  # noqa: BLE001 - the services create them as they reconnect
            topics_note = (
                f" (creating its topics failed: {type(error).__name__}; the services create "
                "them as they reconnect)"
            )
        self._tell(
            f"gallring: the embedded broker stopped ({_how_it_ended(ended)}); started it again "
            f"on {where}{topics_note} — it keeps nothing on disk, so Gallring republishes what "
            "it still holds"
        )
        return True

    async def _create_topics(self) -> None:
        await asyncio.wait_for(
            ensure_topics(self._kafka, topics.ALL_TOPICS), timeout=TOPICS_TIMEOUT_SECONDS
        )

    def _give_up(self, why: str) -> None:
        self.gave_up = True
        self._tell(
            f"gallring: {why}; not starting it again. Stopping Gallring: run `gallring up` "
            "again, or set GALLRING_KAFKA_BOOTSTRAP to a broker of your own."
        )
        self._on_give_up()


def _how_it_ended(exit_code: int) -> str:
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"
