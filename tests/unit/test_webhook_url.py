"""Which URLs may receive webhooks: https to a real host; never link-local or metadata
addresses; loopback and plain http only when development allows it."""

import socket

import pytest

from services.notifier.checked_addresses import CheckedResolver, checked_socket_factory
from shared.webhooks.url_vetting import UnsafeWebhookUrl, check_webhook_url


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/hooks/gallring",
        "https://10.20.30.40:8443/erasures",  # a vendor reached over a VPN
        "https://[2001:db8::10]/hook",
    ],
)
def test_https_to_a_public_or_private_host_is_allowed(url: str) -> None:
    check_webhook_url(url, allow_loopback=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.215.14/hook", "must use https"),
        ("ftp://93.184.215.14/hook", "must start with https://"),
        ("https://169.254.169.254/latest/meta-data/", "link-local or cloud metadata"),
        ("https://[fe80::1]/hook", "link-local or cloud metadata"),
        ("https://[fd00:ec2::254]/", "link-local or cloud metadata"),
        ("https://100.100.100.200/", "link-local or cloud metadata"),
        ("https://0.0.0.0/hook", "no host"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://localhost/hook", "loopback"),
        ("https://user:secret@93.184.215.14/hook", "user name or password"),
        ("https://93.184.215.14:99999/hook", "port"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("https:///hook", "no host"),
        ("https://[::ffff:169.254.169.254]/", "link-local or cloud metadata"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://[64:ff9b::a9fe:a9fe]/", "link-local or cloud metadata"),  # NAT64
        ("https://[2002:a9fe:a9fe::1]/", "link-local or cloud metadata"),  # 6to4
        ("https://[::a9fe:a9fe]/", "link-local or cloud metadata"),  # IPv4-compatible
        ("https://[64:ff9b::7f00:1]/hook", "loopback"),
        ("https://[64:ff9b:1::a9fe:a9fe]/", "link-local or cloud metadata"),  # local NAT64
        ("https://[::1]/hook", "loopback"),
        ("https://192.0.0.192/opc/v2/instance/", "link-local or cloud metadata"),
        ("https://168.63.129.16/machine", "link-local or cloud metadata"),
        ("https://[::]/hook", "no host"),
        ("https://a..b/hook", "not valid"),
    ],
)
def test_unsafe_urls_are_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match=reason):
        check_webhook_url(url, allow_loopback=False)


def test_an_ipv4_host_reached_over_nat64_is_judged_by_its_ipv4_and_sent_to_over_ipv6() -> None:
    # 93.184.215.14 through NAT64, as DNS64 answers an IPv6-only host
    assert check_webhook_url("https://[64:ff9b::5db8:d70e]/hook", allow_loopback=False) == [
        "64:ff9b::5db8:d70e"
    ]


def test_development_allows_loopback_even_over_http_but_never_metadata() -> None:
    check_webhook_url("http://127.0.0.1:8080/hook", allow_loopback=True)
    check_webhook_url("https://localhost/hook", allow_loopback=True)
    with pytest.raises(UnsafeWebhookUrl, match="must use https"):
        check_webhook_url("http://10.0.0.1/hook", allow_loopback=True)
    with pytest.raises(UnsafeWebhookUrl, match="must use https"):  # loopback behind a translator
        check_webhook_url("http://[64:ff9b::7f00:1]/hook", allow_loopback=True)
    with pytest.raises(UnsafeWebhookUrl, match="metadata"):
        check_webhook_url("http://169.254.169.254/", allow_loopback=True)


async def test_the_resolver_answers_with_the_addresses_the_url_check_vetted_only() -> None:
    checked = ["93.184.215.14"]
    resolver = CheckedResolver(lambda: checked)
    [result] = await resolver.resolve("hooks.example.com", 8443)
    assert (result["hostname"], result["host"], result["port"], result["family"]) == (
        "hooks.example.com",
        "93.184.215.14",
        8443,
        socket.AF_INET,
    )
    checked[:] = ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.15"]  # checked again
    assert [(r["host"], r["family"]) for r in await resolver.resolve("hooks.example.com")] == [
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", socket.AF_INET6),
        ("93.184.215.15", socket.AF_INET),
    ]
    checked.clear()
    with pytest.raises(OSError, match="no checked address"):
        await resolver.resolve("hooks.example.com")


def test_a_socket_is_opened_only_to_an_address_the_url_check_vetted() -> None:
    """Also for a URL whose host the HTTP client reads as an address and never resolves."""
    open_socket = checked_socket_factory(lambda: ["127.0.0.1", "::1"])
    stream = (socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
    for family, address in [
        (socket.AF_INET, ("127.0.0.1", 80)),
        (socket.AF_INET6, ("::1", 80, 0, 0)),
        (socket.AF_INET6, ("::ffff:127.0.0.1", 80, 0, 0)),
    ]:
        open_socket((family, *stream, address)).close()
    with pytest.raises(OSError, match=r"169\.254\.169\.254 is not an address"):
        open_socket((socket.AF_INET, *stream, ("169.254.169.254", 80)))


def test_the_check_reads_the_host_as_the_http_client_does() -> None:
    """Unicode digits are digits to the client: this is the metadata address, not a name."""
    digits = "\U0001fbf1\U0001fbf6\U0001fbf9"  # 169 in segmented digits
    with pytest.raises(UnsafeWebhookUrl, match=r"169\.254\.169\.254, a link-local"):
        check_webhook_url(f"https://{digits}.254.169.254/", allow_loopback=False)


@pytest.mark.parametrize("url", ["https://[::1/hook", "https://exam\uff03ple.com/hook"])
def test_a_url_that_does_not_parse_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="the webhook URL is not valid"):
        check_webhook_url(url, allow_loopback=True)


def test_the_check_names_the_addresses_to_connect_to_ipv4_first() -> None:
    assert check_webhook_url("https://93.184.215.14/h", allow_loopback=False) == ["93.184.215.14"]
    addresses = check_webhook_url("http://localhost:1/h", allow_loopback=True)
    assert addresses[0] == "127.0.0.1"
