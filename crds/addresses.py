"""Which IP addresses are internal: never a tenant's notification endpoint (pure).

One table serves both checks: admission (the CRD's CEL rule and the model's validator
refuse a URL whose host is such an address, written literally) and the operator's egress
rule (ambient.operator.notify.egress), which checks every address a host name resolves
to and adds the cluster's own CIDRs and the admin's allow-list.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, class) in lookup order. The class, never the address, is what a refusal says:
# it is written into history, where the tenant reads it.
INTERNAL_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # the cloud metadata service: 169.254.169.254
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # the broadcast address included
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "reserved"),  # IPv4-compatible (deprecated)
        ("64:ff9b:1::/48", "reserved"),  # local-use NAT64
        ("100::/64", "reserved"),  # discard-only
        ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo included
        ("2001:db8::/32", "reserved"),
        ("fc00::/7", "private"),  # unique local (RFC 4193)
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local (deprecated)
        ("ff00::/8", "multicast"),
    )
)

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

# IPv6 forms that stand for an IPv4 address: refused outright when written as a URL's host
# (CEL cannot look inside them; nobody names a receiver that way).
TRANSLATED_NETWORKS: tuple[IPNetwork, ...] = (MAPPED, NAT64, SIX_TO_FOUR)


def internal_class(ip: IPAddress) -> str:
    """The class of internal address ``ip`` is ("loopback", "private", ...), or ""."""
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        why = internal_class(embedded)
        return f"{why} (IPv4 inside IPv6)" if why else ""
    for net, why in INTERNAL_NETWORKS:
        if ip in net:
            return why
    if not ip.is_global:  # anything else the standard library knows as not public
        return "reserved"
    return ""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, well-known NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL's host names literally (brackets and zone allowed), or None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


URL_SHAPE = r"^https://(\[[0-9A-Fa-f:.]+\]|[^/?#@\[\]:]+)(:[0-9]{1,5})?([/?#].*)?$"
"""A notification URL: https, a host (an IPv6 address in brackets, without a zone), an
optional port, no credentials."""

_NUMERIC_HOST = r"(^|\.)(0[xX][0-9a-fA-F]*|[0-9]+)\.?$"
"""A host whose last label is a number is an address in some legacy form (127.1,
2130706433, 0x7f.1), never a DNS name: only the canonical form is accepted."""


def literal_host_refusal(host: str) -> str:
    """Why a URL's host, written as an address, may not be a notification endpoint ("" for
    a public address or a host name): admission's check, without the operator's
    allow-list (name an allow-listed internal receiver by host name)."""
    ip = ip_literal(host)
    if ip is None:
        return "the host is not a canonical address" if re.search(_NUMERIC_HOST, host) else ""
    why = internal_class(ip)
    if not why and any(ip in net for net in TRANSLATED_NETWORKS):
        why = "translated (IPv4 inside IPv6)"
    return f"the host is a {why} address" if why else ""


# The URL's host, cut out of ``self.url`` (of a shape URL_SHAPE admits) with string
# functions: CEL's url() gives a hostname of unbounded estimated size, and any function
# applied to it exceeds the CRD's cost budget.
_CEL_NAME_HOST = "self.url.substring(8).split('/')[0].split('?')[0].split('#')[0].split(':')[0]"
_CEL_V6_HOST = "self.url.substring(9).split(']')[0]"


def _cel_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_rules(shape_message: str, message: str) -> list[dict[str, str]]:
    """CEL rules on an object with a ``url`` field, refusing what ``URL_SHAPE`` (with
    ``shape_message``) and ``literal_host_refusal`` (with ``message``) refuse. Kubernetes'
    ``ip()`` refuses IPv4-mapped addresses, so such a host fails ``isIP``: refused too."""
    # cidr() refuses an IPv4-mapped prefix, as ip() refuses such an address.
    translated = [str(n) for n in TRANSLATED_NETWORKS if n != MAPPED]
    cidrs = [str(net) for net, _ in INTERNAL_NETWORKS] + translated
    listed = "[" + ", ".join(f"'{c}'" for c in cidrs) + "]"
    name, v6 = _CEL_NAME_HOST, _CEL_V6_HOST
    return [
        {"rule": f"self.url.matches({_cel_string(URL_SHAPE)})", "message": shape_message},
        {
            "rule": f"self.url.startsWith('https://[') || (isIP({name}) ? "
            f"!{listed}.exists(c, cidr(c).containsIP(ip({name}))) : "
            f"!{name}.matches({_cel_string(_NUMERIC_HOST)}))",
            "message": message,
        },
        {
            "rule": f"!self.url.startsWith('https://[') || (isIP({v6}) && "
            f"!{listed}.exists(c, cidr(c).containsIP(ip({v6}))))",
            "message": message,
        },
    ]
