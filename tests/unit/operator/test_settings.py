"""Operator settings: the notification egress settings parse into the rule, or stop it."""

from __future__ import annotations

import pydantic
import pytest

from ambient.operator.notify.egress import refusal
from ambient.operator.settings import OperatorSettings


def test_the_egress_settings_make_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_NOTIFY_EGRESS_ALLOW", "10.20.0.0/16, receiver.team-a.svc")
    monkeypatch.setenv("AMBIENT_NOTIFY_CLUSTER_CIDRS", "34.118.224.0/20")
    rule = OperatorSettings().notify_egress_rule
    assert refusal(rule, "h", "10.20.1.1") == ""
    assert refusal(rule, "receiver.team-a.svc", "127.0.0.1") == ""
    assert refusal(rule, "h", "34.118.224.1") == "cluster-internal"


def test_by_default_every_internal_address_is_refused() -> None:
    rule = OperatorSettings().notify_egress_rule
    assert refusal(rule, "localhost", "127.0.0.1") == "loopback"


@pytest.mark.parametrize(
    ("name", "value"),
    [("AMBIENT_NOTIFY_EGRESS_ALLOW", "10.0.0.0/33"), ("AMBIENT_NOTIFY_CLUSTER_CIDRS", "svc")],
)
def test_a_bad_entry_stops_the_operator(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError, match="not a"):
        OperatorSettings()
