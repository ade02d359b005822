"""Internal addresses, as admission sees them: a notification URL's host written as one."""

from __future__ import annotations

import pydantic
import pytest

from ambient.crds.addresses import URL_SHAPE, cel_rules, literal_host_refusal
from ambient.crds.models import NotificationWebhook


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("hooks.example.com", ""),
        ("8.8.8.8", ""),
        ("2606:4700::1111", ""),
        ("169.254.169.254", "the host is a link-local address"),
        ("127.0.0.1", "the host is a loopback address"),
        ("[::1]", "the host is a loopback address"),
        ("10.1.2.3", "the host is a private address"),
        ("::ffff:8.8.8.8", "the host is a translated (IPv4 inside IPv6) address"),
        ("64:ff9b::808:808", "the host is a translated (IPv4 inside IPv6) address"),
        ("2002:808:808::1", "the host is a translated (IPv4 inside IPv6) address"),
        ("127.1", "the host is not a canonical address"),
        ("2130706433", "the host is not a canonical address"),
        ("0x7f.1", "the host is not a canonical address"),
        ("hooks.example.com.", ""),
        ("1password.example", ""),
        ("::ffff:169.254.169.254", "the host is a link-local (IPv4 inside IPv6) address"),
    ],
)
def test_literal_host_refusal(host: str, why: str) -> None:
    assert literal_host_refusal(host) == why


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:8443/hook",
        "https://[fd00::1]/",
        "https://100.64.0.1/",
        "https://",
        "https://user:pw@hooks.example.com/",
        "https://[fe80::1%25eth0]/",
        "https://127.1/",
    ],
)
def test_the_model_refuses_an_internal_or_missing_host(url: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="url must be an https URL"):
        NotificationWebhook.model_validate({"url": url, "events": ["session.completed"]})


def test_the_model_admits_a_host_name_or_a_public_address() -> None:
    for url in ("https://hooks.example.com/x", "https://8.8.8.8/", "https://[2606:4700::1]/"):
        NotificationWebhook.model_validate({"url": url, "events": ["session.completed"]})


def test_the_cel_rules_carry_the_same_table_and_shape() -> None:
    shape, names, v6 = (r["rule"] for r in cel_rules("shape", "m"))
    assert URL_SHAPE.replace("\\", "\\\\") in shape
    for cidr in ("'169.254.0.0/16'", "'fc00::/7'", "'64:ff9b::/96'", "'100.64.0.0/10'"):
        assert cidr in names and cidr in v6
