"""Which webhook URLs Gallring will POST to: ``https`` on a public or private network address.

Plain ``http`` and loopback addresses are for development only (a setting allows them); link-local
and cloud metadata addresses never are, because a request there could read the host's credentials.
The check resolves the host name, so it is done when a recipient is registered and again before
deliveries, which then go to the address that was checked (a name can be repointed).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from yarl import URL

#: Instance metadata services that are not in the link-local ranges.
_METADATA = {
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
    ipaddress.ip_address("168.63.129.16"),  # Azure's host endpoint (WireServer)
}
#: IPv6 addresses that carry an IPv4 address in their last 32 bits and reach it through a
#: translator (NAT64's well-known prefix, and the local-use range a network's own translator
#: takes its /96 from) or a compatibility route (the deprecated IPv4-compatible addresses).
_CARRYING_IPV4 = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
)


class UnsafeWebhookUrl(ValueError):
    """The URL may not receive Gallring's webhooks; the message says why."""


def check_webhook_url(url: str, *, allow_loopback: bool) -> list[str]:
    """Raise :class:`UnsafeWebhookUrl` unless ``url`` may receive webhooks; else the addresses
    it may be sent to, IPv4 first."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # a bracketed host left open, a name with a "#" in disguise
        raise UnsafeWebhookUrl(f"the webhook URL is not valid: {error}") from None
    if parts.scheme not in ("https", "http"):
        raise UnsafeWebhookUrl("the webhook URL must start with https://")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("the webhook URL must not carry a user name or password")
    if not parts.hostname:
        raise UnsafeWebhookUrl("the webhook URL has no host")
    try:
        port = parts.port
    except ValueError as error:
        raise UnsafeWebhookUrl(f"the webhook URL's port is not valid: {error}") from None
    addresses = _resolve(_host_sent_to(url), port)
    reached = [_reached(address) for address in addresses]
    for address in reached:
        if address.is_link_local or address in _METADATA:
            raise UnsafeWebhookUrl(
                f"{parts.hostname} resolves to {address}, a link-local or cloud metadata address"
            )
        if address.is_unspecified or address.is_multicast:
            raise UnsafeWebhookUrl(f"{parts.hostname} resolves to {address}, which is no host")
        if address.is_loopback and not allow_loopback:
            raise UnsafeWebhookUrl(
                f"{parts.hostname} resolves to the loopback address {address}; loopback "
                "receivers are for development (GALLRING_WEBHOOK_ALLOW_LOOPBACK=true)"
            )
    # Plain http only to an address that is loopback itself, not one a translator reaches.
    if parts.scheme == "http" and not (allow_loopback and all(a.is_loopback for a in addresses)):
        raise UnsafeWebhookUrl(
            "the webhook URL must use https; plain http is allowed only for a loopback "
            "receiver in development"
        )
    # In the resolver's order, IPv4 first (sorted() keeps the order within each version).
    return [str(a) for a in sorted(dict.fromkeys(addresses), key=lambda a: a.version)]


def _host_sent_to(url: str) -> str:
    """The host as the notifier's HTTP client reads it (yarl: IDNA 2008, and Unicode digits
    as digits), so that the check resolves the very name, or address, requests go to."""
    try:
        host = URL(url).raw_host
    except ValueError:
        host = None
    if not host:
        raise UnsafeWebhookUrl("the webhook URL's host name is not valid")
    return host


def _resolve(host: str, port: int | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The host's addresses; IPv4 addresses written as IPv6 (``::ffff:169.254.169.254``) as the
    IPv4 address they are."""
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeWebhookUrl(f"the webhook host {host} does not resolve") from None
    except UnicodeError:
        raise UnsafeWebhookUrl("the webhook URL's host name is not valid") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        addresses.append(address)
    return addresses


def _reached(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """What a request to ``address`` reaches: an IPv6 address that carries an IPv4 one (NAT64's
    ``64:ff9b::a9fe:a9fe``, 6to4's ``2002:a9fe:a9fe::``) is judged as that IPv4 address, though
    it is sent to as it is (an IPv6-only host reaches IPv4 through its NAT64 gateway)."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _CARRYING_IPV4) and int(address) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address
