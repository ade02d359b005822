"""Operator settings: every tunable is an AMBIENT_* variable (the defaults are the ones the
benchmarks were measured with); the notification egress settings parse into the rule, or
stop the operator."""

from __future__ import annotations

import inspect

import pydantic
import pytest

from ambient.operator import sharding
from ambient.operator.notify.egress import refusal
from ambient.operator.settings import OperatorSettings


def test_tuning_defaults(settings: OperatorSettings) -> None:
    assert settings.progress_interval_seconds == 1.0
    assert settings.usage_interval_seconds == 60.0
    assert settings.kick_delay_seconds == 0.05
    assert settings.inflight_seconds == 120.0
    assert settings.reconcile_attempts == 8
    assert settings.indexed_payload_bytes == 4096
    assert settings.event_posting_workers == 4
    assert settings.notify_secret_ttl_seconds == 60.0
    assert (settings.watch_server_timeout_seconds, settings.watch_client_timeout_seconds) == (
        300,
        330,
    )
    assert settings.request_timeout_seconds == 30


def test_tunables_come_from_the_environment(
    settings: OperatorSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMBIENT_PROGRESS_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("AMBIENT_RECONCILE_ATTEMPTS", "3")
    monkeypatch.setenv("AMBIENT_KICK_DELAY_SECONDS", "0")
    tuned = OperatorSettings()
    assert tuned.progress_interval_seconds == 0.5
    assert tuned.reconcile_attempts == 3
    assert tuned.kick_delay_seconds == 0


def test_every_setting_is_described() -> None:
    """The docstring under each field is what a platform team reads."""
    lines = inspect.getsource(OperatorSettings).splitlines()
    for name in OperatorSettings.model_fields:
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}:"))
        following = next(line.strip() for line in lines[at + 1 :] if line.strip())
        assert following.startswith('"""'), f"{name} has no description"


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


def test_reply_settings(settings: OperatorSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.github_api_url == "https://api.github.com"
    assert settings.slack_api_url == "https://slack.com/api"
    assert (settings.reply_max_attempts, settings.reply_backoff_seconds) == (5, 1.0)
    monkeypatch.setenv("AMBIENT_GITHUB_API_URL", "https://ghe.example.test/api/v3")
    assert OperatorSettings().github_api_url == "https://ghe.example.test/api/v3"
    monkeypatch.setenv("AMBIENT_SLACK_API_URL", "slack.com/api")  # no scheme: refused
    with pytest.raises(pydantic.ValidationError, match="slack_api_url"):
        OperatorSettings()


def test_a_shard_owns_only_its_share_of_the_namespaces() -> None:
    unsharded = OperatorSettings()
    assert unsharded.owns("team-a") and unsharded.owns("anything")
    shard = OperatorSettings(shard_map="ambient-operator-shards", shard_index=1)
    shard.serve_share(3)
    names = [f"team-{i}" for i in range(60)]
    assert {n for n in names if shard.owns(n)} == {n for n in names if sharding.owner(n, 3) == 1}
    assert 0 < sum(map(shard.owns, names)) < len(names)
