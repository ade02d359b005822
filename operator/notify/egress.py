"""Which addresses a notification may be sent to (pure).

A tenant chooses notification URLs, and the operator calls them from inside the cluster,
so an unchecked URL reaches what only the cluster can reach: the cloud metadata service
(169.254.169.254), the API server, other tenants' Services, the node's loopback. The
sender resolves the host once, asks ``refusal`` about EVERY address the name resolved
to, and connects only to the addresses checked here (no second lookup, so a name cannot
be re-pointed between check and connect). Refused: the internal ranges of
``ambient.crds.addresses`` (loopback, private RFC 1918 and RFC 4193, link-local, CGNAT,
multicast, unspecified, reserved, IPv6 forms of such IPv4 addresses; admission checks
address literals against the same table) and the cluster's own service and pod CIDRs.
An allow-list set by the cluster admin (CIDRs or host names, e.g. an in-cluster receiver)
overrides every refusal.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ambient.crds.addresses import (
    INTERNAL_NETWORKS,
    IPNetwork,
    internal_class,
    ip_literal,
)

__all__ = [
    "INTERNAL_NETWORKS",
    "EgressRule",
    "ip_literal",
    "literal_refusal",
    "parse_rule",
    "refusal",
]


@dataclass(frozen=True)
class EgressRule:
    """The cluster's networks (refused besides the fixed ones) and the admin's allow-list."""

    cluster_networks: tuple[IPNetwork, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)


def parse_rule(cluster_cidrs: str = "", allow: str = "") -> EgressRule:
    """The rule from two comma-separated settings; raises ValueError on a bad entry (a
    mistyped allow-list must stop the operator, not silently allow or refuse)."""
    cluster = tuple(_network(entry) for entry in _entries(cluster_cidrs))
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in _entries(allow):
        if _looks_like_address(entry):
            networks.append(_network(entry))
        elif _is_host_name(entry):
            hosts.add(_host_key(entry))
        else:
            raise ValueError(f"not a CIDR, an address or a host name: {entry!r}")
    return EgressRule(cluster, tuple(networks), frozenset(hosts))


def refusal(rule: EgressRule, host: str, address: str) -> str:
    """Why ``host``, resolved to ``address``, may not be called; "" when it may."""
    if _host_key(host) in rule.allowed_hosts:
        return ""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone index is not the address
    except ValueError:
        return "not an IP address"
    if any(ip in net for net in rule.allowed_networks):
        return ""
    why = internal_class(ip)
    if not why and any(ip in net for net in rule.cluster_networks):
        why = "cluster-internal"
    return why


def literal_refusal(rule: EgressRule, url: str) -> str:
    """Why the URL's host, when it is an address literal, may not be called ("" when it
    may, or when it is a name: names are checked once resolved). An address literal is
    never looked up, so the resolver's check would not see it. The scheme and the URL's
    shape are admission's business (ambient.crds.addresses.URL_SHAPE)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return "unparsable URL"
    literal = ip_literal(host)
    return refusal(rule, host, str(literal)) if literal is not None else ""


def _entries(value: str) -> list[str]:
    return [e.strip() for e in value.split(",") if e.strip()]


def _network(entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise ValueError(f"not a CIDR or an address: {entry!r}") from None


def _looks_like_address(entry: str) -> bool:
    return ":" in entry or "/" in entry or entry.replace(".", "").isdigit()


def _is_host_name(entry: str) -> bool:
    labels = entry.rstrip(".").split(".")
    return len(entry) <= 253 and all(
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


def _host_key(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()
