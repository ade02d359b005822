"""The egress rule: which resolved addresses a notification may be sent to."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ambient.operator.notify import egress
from ambient.operator.notify.egress import EgressRule, literal_refusal, parse_rule, refusal

DEFAULT = EgressRule()
CLUSTER = parse_rule(cluster_cidrs="34.118.224.0/20, 2600:1900:4000::/44")


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.255", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "reserved"),
        ("2001:db8::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback (IPv4 inside IPv6)"),
        ("::ffff:169.254.169.254", "link-local (IPv4 inside IPv6)"),
        ("::ffff:10.1.2.3", "private (IPv4 inside IPv6)"),
        ("64:ff9b::a9fe:a9fe", "link-local (IPv4 inside IPv6)"),  # NAT64 of the metadata IP
        ("2002:7f00:1::1", "loopback (IPv4 inside IPv6)"),  # 6to4 of 127.0.0.1
        ("2001::1", "reserved"),  # Teredo
        ("not-an-address", "not an IP address"),
    ],
)
def test_internal_addresses_are_refused(address: str, why: str) -> None:
    assert refusal(DEFAULT, "hooks.example.com", address) == why


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "140.82.112.3", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(DEFAULT, "hooks.example.com", address) == ""


def test_the_cluster_networks_are_refused_even_when_public() -> None:
    assert refusal(DEFAULT, "h", "34.118.224.10") == ""
    assert refusal(CLUSTER, "h", "34.118.224.10") == "cluster-internal"
    assert refusal(CLUSTER, "h", "2600:1900:4000::1") == "cluster-internal"


def test_the_allow_list_overrides_by_network_or_by_host_name() -> None:
    rule = parse_rule(
        cluster_cidrs="34.118.224.0/20",
        allow="10.20.0.0/16, 34.118.224.7, receiver.ambient-system.svc.",
    )
    assert refusal(rule, "h", "10.20.3.4") == ""
    assert refusal(rule, "h", "10.21.3.4") == "private"
    assert refusal(rule, "h", "34.118.224.7") == ""
    assert refusal(rule, "h", "34.118.224.8") == "cluster-internal"
    assert refusal(rule, "Receiver.Ambient-System.svc", "127.0.0.1") == ""
    assert refusal(rule, "receiver.ambient-system.svc.", "169.254.169.254") == ""
    assert refusal(rule, "other.svc", "127.0.0.1") == "loopback"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "300.1.1.1", "under_score.example", "a..b", "-x"])
def test_a_bad_setting_is_an_error_not_a_silent_allow(bad: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_rule(allow=bad)
    with pytest.raises(ValueError, match="not a"):
        parse_rule(cluster_cidrs="10.0.0.0/8," + bad)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://hooks.example.com/x", ""),  # a name: checked once resolved
        ("https://8.8.8.8/x", ""),
        ("https://[2606:4700::1111]:8443/x", ""),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://127.0.0.1:8443/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:a9fe:a9fe]/", "link-local (IPv4 inside IPv6)"),
        ("https://10.1.2.3/", "private"),
        ("https://[::1/", "unparsable URL"),
    ],
)
def test_literal_refusal(url: str, why: str) -> None:
    assert literal_refusal(DEFAULT, url) == why


def test_an_allow_listed_literal_is_not_refused() -> None:
    assert literal_refusal(parse_rule(allow="127.0.0.1/32"), "https://127.0.0.1:1/") == ""


_NETWORKS = [net for net, _ in egress.INTERNAL_NETWORKS]


@st.composite
def _refused(draw: st.DrawFn) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    net = draw(st.sampled_from(_NETWORKS))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return net.network_address + offset


@given(_refused(), st.booleans())
def test_any_address_in_a_refused_network_is_refused_unless_allow_listed(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, listed: bool
) -> None:
    if listed:
        rule = parse_rule(allow=f"{ip}/{ip.max_prefixlen}")
        assert refusal(rule, "h", str(ip)) == ""
    else:
        assert refusal(DEFAULT, "h", str(ip)) != ""
        url = f"https://[{ip}]/" if ip.version == 6 else f"https://{ip}/"
        assert literal_refusal(DEFAULT, url) != ""
    if ip.version == 4:  # the same address written as IPv4-mapped IPv6
        assert refusal(DEFAULT, "h", f"::ffff:{ip}") != ""


@given(st.sampled_from(_NETWORKS), st.integers(0, 2**128 - 1))
def test_an_allow_listed_network_admits_each_of_its_addresses(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network, n: int
) -> None:
    ip = net.network_address + n % net.num_addresses
    rule = parse_rule(allow=str(net))
    assert refusal(rule, "h", str(ip)) == ""
