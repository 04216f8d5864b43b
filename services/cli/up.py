"""``gallring up``: the whole system on the embedded default, for a newcomer's first run.

The API, the purger and the notifier on SQLite under ``./var/``, with a sample collection
system beside them and its erasure agent (:mod:`services.cli.collection_system`), a Tansu broker on
127.0.0.1:9092 (``GALLRING_EMBEDDED_BROKER_PORT``) unless ``GALLRING_KAFKA_BOOTSTRAP`` names a
real one, a pseudonym secret and a key that seals recipients' signing secrets, each generated
once into ``./var/`` (readable by its owner alone, as the database), and an admin API key made
on the first run and printed once. Recipients'
webhooks may go to loopback receivers here (development), unless
``GALLRING_WEBHOOK_ALLOW_LOOPBACK`` says otherwise, and the purger sweeps every 5 s (not 60).
Should the embedded broker die, it is started again on its port
(:mod:`shared.messaging.broker_keeper`).
Production sets every ``GALLRING_…`` variable instead.
"""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from services.agent.settings import AgentSettings
from services.api.api_keys import KeyStore, Scope
from services.api.main import serve
from services.api.settings import ApiSettings
from services.cli import collection_system
from services.cli.keys import reseal_signing_secrets
from services.notifier.settings import NotifierSettings
from services.purger.settings import PurgerSettings
from shared.messaging.broker_keeper import BrokerKeeper
from shared.messaging.embedded_broker import BrokerStartError, EmbeddedBroker
from shared.runtime.child_process import end_with_parent
from shared.runtime.logs import QUIET_VARIABLE, quiet_libraries
from shared.runtime.settings import load_settings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade

STATE_DIR = Path("var")
EMBEDDED_BROKER_PORT = 9092
WORKER_STOP_SECONDS = 30  # the workers' own stop takes up to 15 s
WORKERS = (("purger",), ("notifier",))
AGENT = ("agent", "run")
COLLECTION_SYSTEM = collection_system.CollectionSystem(STATE_DIR)
FIRST_KEY_NAME = "first-run-admin"
FIRST_KEY_FILE = STATE_DIR / "first-admin-key"


def up(*, verbose: bool = False) -> int:
    # SIGTERM (kill, docker stop) and a closed terminal's SIGHUP stop it as Ctrl-C does, from
    # the start: while the API serves, uvicorn shuts it down gracefully and then raises the
    # signal again under these handlers, which end serve() as Ctrl-C does; either way what was
    # started is stopped below (the defaults would end this process and leave it running).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, lambda *_: signal.raise_signal(signal.SIGINT))
    _private_state_dir()
    os.environ.setdefault("GALLRING_PSEUDONYM_SECRET", _local_secret("pseudonym-secret"))
    os.environ.setdefault("GALLRING_SECRET_SEALING_KEY", _local_secret("secret-sealing-key"))
    os.environ.setdefault("GALLRING_DATABASE_URL", f"sqlite:///{STATE_DIR / 'gallring.db'}")
    os.environ.setdefault("GALLRING_WEBHOOK_ALLOW_LOOPBACK", "true")
    # A line per request and per sweep would scroll the first admin key away within a minute.
    os.environ.setdefault(QUIET_VARIABLE, "false" if verbose else "true")
    broker, keeper, workers = None, None, []
    try:
        if "GALLRING_KAFKA_BOOTSTRAP" not in os.environ:
            port = int(os.environ.get("GALLRING_EMBEDDED_BROKER_PORT", EMBEDDED_BROKER_PORT))
            broker = EmbeddedBroker(port, ends_with_us=True)
            try:
                broker.start()
            except BrokerStartError as error:
                print(
                    f"gallring: cannot start the embedded broker on 127.0.0.1:{port} ({error}); "
                    "is something else listening there? Set GALLRING_EMBEDDED_BROKER_PORT to "
                    "use another port, or GALLRING_KAFKA_BOOTSTRAP to use a running broker.",
                    file=sys.stderr,
                )
                return 1
            os.environ["GALLRING_KAFKA_BOOTSTRAP"] = broker.bootstrap_servers
            # The embedded Tansu broker refuses the idempotent producer.
            os.environ.setdefault("GALLRING_KAFKA_ENABLE_IDEMPOTENCE", "false")
        settings = load_settings(ApiSettings)
        # A newcomer's erasures within seconds, not a minute; recipients confirm at this API.
        os.environ.setdefault("GALLRING_PURGER_SWEEP_INTERVAL_SECONDS", "5")
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        os.environ.setdefault("GALLRING_NOTIFIER_PUBLIC_API_URL", api_url)
        upgrade(settings.database_url)
        _reseal_signing_secrets(settings)
        first_key = _first_run_admin_key(settings)
        os.environ.setdefault("GALLRING_AGENT_API_URL", api_url)
        agent_environment = collection_system.prepare(COLLECTION_SYSTEM, settings.database_url)
        print(_where_to_look(api_url, first_key, agent_environment), flush=True)
        # The purger, the notifier and the sample system's agent in processes of their own, as
        # in production; they stop when the API does, told by this process (SIGTERM), not by a
        # terminal's Ctrl-C, which could come before they can take it cleanly; and with it,
        # should it be killed.
        for command, environment in (*((w, None) for w in WORKERS), (AGENT, agent_environment)):
            workers.append(
                subprocess.Popen(  # noqa: S603 - our own command
                    [sys.executable, "-m", "services.cli.main", *command],
                    env=environment,
                    process_group=0,
                    preexec_fn=end_with_parent,  # safe: no other threads here yet
                )
            )
        if broker is not None:
            # From here on a thread watches the broker (the workers' preexec_fn above ran while
            # there was none; no preexec_fn may follow), and should it die starts it again while
            # the API serves; past a few deaths a minute it gives up and stops everything as
            # Ctrl-C does.
            keeper = BrokerKeeper(broker, settings.kafka, on_give_up=_interrupt_ourselves)
            keeper.start()
        serve(settings)
    except KeyboardInterrupt:
        pass  # stopped before the API served (while serving, uvicorn takes it)
    finally:
        _stop(workers)
        if keeper is not None:
            keeper.stop()
        elif broker is not None:
            broker.stop()
    return 1 if keeper is not None and keeper.gave_up else 0


def _interrupt_ourselves() -> None:
    """Ctrl-C, as if typed: the API and the workers stop as they do then."""
    os.kill(os.getpid(), signal.SIGINT)


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """Ask each worker to stop (SIGTERM), give it the time it takes, and kill it past that or
    at a second Ctrl-C: none may outlive this process, nor the broker it uses."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=WORKER_STOP_SECONDS)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            worker.kill()
            worker.wait()


def _private_state_dir() -> None:
    """``./var/`` holds the secrets and the database: only its owner may enter it (one made by
    an older release, with the umask's mode, is narrowed)."""
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    STATE_DIR.chmod(0o700)


def _local_secret(name: str) -> str:
    path = STATE_DIR / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _reseal_signing_secrets(settings: ApiSettings) -> None:
    """Signing secrets an older release sealed with the key derived from the pseudonym secret,
    sealed again under the sealing key (``gallring keys reseal``, done here at every start)."""
    engine = make_engine(settings.database_url)
    try:
        reseal_signing_secrets(engine, settings.secret_box())
    finally:
        engine.dispose()


def _first_run_admin_key(settings: ApiSettings) -> str | None:
    """An admin key on the first run, when the database has none, kept in :data:`FIRST_KEY_FILE`
    (readable by its owner alone) as well as printed; None after."""
    engine = make_engine(settings.database_url)
    try:
        keys = KeyStore(engine)
        if keys.list_keys():
            return None
        key = keys.create(FIRST_KEY_NAME, {Scope.ADMIN})
    finally:
        engine.dispose()
    FIRST_KEY_FILE.unlink(missing_ok=True)
    FIRST_KEY_FILE.touch(mode=0o600)
    FIRST_KEY_FILE.write_text(key + "\n")
    return key


def _where_to_look(api: str, first_key: str | None, agent_environment: dict[str, str]) -> str:
    purger, notifier = load_settings(PurgerSettings), load_settings(NotifierSettings)
    purger_metrics = _metrics_url(purger.purger_metrics_host, purger.purger_metrics_port)
    notifier_metrics = _metrics_url(notifier.notifier_metrics_host, notifier.notifier_metrics_port)
    agent = AgentSettings.model_validate(
        {
            name.removeprefix("GALLRING_").lower(): value
            for name, value in agent_environment.items()
            if name.startswith("GALLRING_AGENT_") or name == "GALLRING_PSEUDONYM_SECRET"
        }
    )
    agent_metrics = _metrics_url(agent.agent_status_host, agent.agent_status_port)
    if first_key:
        key = (
            f"{first_key}\n             (shown this once: store it; it is in {FIRST_KEY_FILE} "
            f"too; `gallring keys revoke --name {FIRST_KEY_NAME}` revokes it)"
        )
    else:
        key = (
            f"made on the first run (in {FIRST_KEY_FILE} unless deleted); "
            "`gallring keys create --name … --scope admin` makes another"
        )
    return (
        "\nGallring is starting:\n"
        f"  API docs   {api}/docs\n"
        f"  metrics    {api}/metrics, {purger_metrics} (purger), {notifier_metrics} (notifier),\n"
        f"             {agent_metrics} (the collection system's agent)\n"
        f"  admin key  {key}\n"
        f"  company    a sample collection system, {COLLECTION_SYSTEM.database}, described to its\n"
        f"             agent by {COLLECTION_SYSTEM.dataset_file}\n"
        "  try        `make demo` in another terminal; Ctrl-C here stops everything\n"
        + (
            "  quiet      no access log, no scheduler lines (`gallring up --verbose` shows them)\n"
            if quiet_libraries()
            else ""
        )
    )


def _metrics_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/metrics" if port else "off"
