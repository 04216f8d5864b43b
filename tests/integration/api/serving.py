"""The API served by uvicorn on a loopback port, in a thread of the test's process, for tools
that talk to it over HTTP from outside (Schemathesis, a generated client)."""

import contextlib
import ipaddress
import threading
import urllib.request
from collections.abc import Iterator

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.webhooks import url_vetting
from tests.polling import wait_until


def offline_resolve(
    host: str, port: int | None
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The webhook URL check's resolver, without the network: an address is itself, a name
    does not resolve (tests send traffic to loopback only)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        raise url_vetting.UnsafeWebhookUrl(f"the webhook host {host} does not resolve") from None


@contextlib.contextmanager
def serving(settings: ApiSettings) -> Iterator[str]:
    """The API under uvicorn on a loopback port, in a thread; its base URL once it is ready."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.api_port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.api_port}"
    try:
        _wait_until_ready(f"{base}/readyz", thread)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_until_ready(url: str, thread: threading.Thread) -> None:
    def ready() -> bool:
        assert thread.is_alive(), "the API stopped while starting"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
        return False

    wait_until(ready, timeout=60, interval=0.2)
