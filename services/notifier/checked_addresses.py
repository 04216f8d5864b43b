"""Connections for webhook deliveries that reach only the addresses the URL check vetted, so
that a name repointed after the check (DNS rebinding) cannot send a delivery elsewhere. The
request keeps its name, so the ``Host`` header, the TLS server name and the certificate check
are those of the name.

Two guards: names resolve to the vetted addresses only (:class:`CheckedResolver`), and a socket
is opened only to a vetted address (:func:`checked_socket_factory`), which also holds for a URL
whose host the HTTP client reads as an address and never resolves.
"""

import ipaddress
import socket
from collections.abc import Callable

from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult

CheckedAddresses = Callable[[], list[str]]  # the addresses of the URL's latest check


class CheckedResolver(AbstractResolver):
    """Resolves the host of one webhook URL to the addresses its latest check vetted.

    ``checked_addresses`` is asked at every connection, so a new check's addresses are used
    from then on; the connection pool must not cache lookups (``use_dns_cache=False``)."""

    def __init__(self, checked_addresses: CheckedAddresses) -> None:
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


def checked_socket_factory(checked_addresses: CheckedAddresses) -> SocketFactoryType:
    """A socket for a connection to a vetted address; ``OSError`` (a failed connection) for
    any other."""

    def open_socket(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        try:
            peer = ipaddress.ip_address(address[0].split("%")[0])
        except ValueError:
            raise OSError(f"{address[0]} is not an address") from None
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped  # as the check names it
        if peer not in {ipaddress.ip_address(a) for a in checked_addresses()}:
            raise OSError(f"{peer} is not an address the webhook URL's check vetted")
        return socket.socket(family=family, type=type_, proto=proto)

    return open_socket
