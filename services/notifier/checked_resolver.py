"""Name resolution for webhook deliveries that answers only with the addresses the URL check
vetted, so that a name repointed after the check (DNS rebinding) cannot send a delivery
elsewhere. The request keeps its name, so the ``Host`` header, the TLS server name and the
certificate check are those of the name.
"""

import ipaddress
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult


class CheckedResolver(AbstractResolver):
    """Resolves the host of one webhook URL to the addresses its latest check vetted.

    ``checked_addresses`` is asked at every connection, so a new check's addresses are used
    from then on; the connection pool must not cache lookups (``use_dns_cache=False``)."""

    def __init__(self, checked_addresses: Callable[[], list[str]]) -> None:
        self._checked_addresses = checked_addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = []
        for address in self._checked_addresses():
            version = ipaddress.ip_address(address).version
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=socket.AF_INET6 if version == 6 else socket.AF_INET,
                    proto=socket.IPPROTO_TCP,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            raise OSError(f"{host} has no checked address")
        return results

    async def close(self) -> None:
        """Nothing to release: no resolver of its own."""
