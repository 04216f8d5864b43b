"""Running the agent: ``gallring agent run`` (settings from the environment)."""

import asyncio
import logging
import signal

from services.agent.bootstrap import Agent
from services.agent.settings import AgentSettings
from shared.runtime.gc_tuning import tune_garbage_collection
from shared.runtime.logs import configure_logging
from shared.runtime.worker_process import run_event_loop


def serve(settings: AgentSettings, *, dry_run: bool | None = None) -> None:
    """Run until SIGINT or SIGTERM."""
    configure_logging()
    run_event_loop(_run(settings, dry_run))


async def _run(settings: AgentSettings, dry_run: bool | None) -> None:
    agent = Agent(settings, dry_run=dry_run)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, agent.stop)
    logging.getLogger("gallring").info(agent.started())
    tune_garbage_collection()
    try:
        await agent.run()
    finally:
        agent.close()
