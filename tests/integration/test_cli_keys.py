"""`ambient keys` against the real API server and the real ingress: a key made by the CLI
works at once, its last use shows in the policy's status and in `keys list`, a revoked
key stops working and is listed with who revoked it, and an expired key is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from .test_ingress_sessions import github, ingress, tenant  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PING = {"zen": "keys"}


def ambient(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "ambient"), *args], capture_output=True, text=True, env=cluster.env,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_cli_key_works_shows_its_use_and_stops_when_revoked(cluster, ingress, namespace):  # noqa: F811
    tenant(cluster, namespace, sources=("github",))  # the signing Secret and a legacy key
    made = ambient(
        cluster, "keys", "create", "-n", namespace, "--source", "github",
        "--url", "https://ambient.example.com", "--description", "org webhook",
    ).stdout  # fmt: skip
    key = next(line for line in made.splitlines() if line.startswith("amb_github_"))
    assert f"https://ambient.example.com/webhooks/github/{key}" in made

    def pinged() -> bool:
        return github(ingress, key, PING, str(uuid.uuid4()), event="ping").status_code == 200

    cluster.wait_for("the new key to work", pinged, 30)
    digest = hashlib.sha256(key.encode()).hexdigest()

    def used() -> str | None:
        policy = cluster.custom.get_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "namespacepolicies", "policy"
        )
        return (policy.get("status") or {}).get("keysLastUsed", {}).get(digest[:16])

    assert cluster.wait_for("the key's last use recorded", used, 30).endswith("Z")
    listed = json.loads(ambient(cluster, "-n", namespace, "keys", "list", "-o", "json").stdout)
    active = [k for k in listed if k["state"] == "active"]
    assert [(k["prefix"], k["last_used"] != "-") for k in active] == [(key[:15], True)]
    # create replaced the key tenant() made: it is listed as revoked, by whoever ran it.
    assert [k["prefix"] for k in listed if k["state"] == "revoked"] == ["(no prefix)"]

    ambient(cluster, "-n", namespace, "keys", "revoke", "--source", "github", "--prefix", key)
    cluster.wait_for(
        "the revoked key refused",
        lambda: github(ingress, key, PING, str(uuid.uuid4()), event="ping").status_code == 401,
        30,
    )
    after = json.loads(ambient(cluster, "-n", namespace, "keys", "list", "-o", "json").stdout)
    revoked = [k for k in after if k["state"] == "revoked" and k["prefix"] == key[:15]]
    assert len(revoked) == 1 and revoked[0]["by"]


def test_an_expired_key_is_refused_with_the_reason(cluster, ingress, namespace):  # noqa: F811
    tenant(cluster, namespace, sources=("github",))
    key = f"amb_github_{uuid.uuid4().hex}"
    entry = {
        "source": "github",
        "hash": hashlib.sha256(key.encode()).hexdigest(),
        "prefix": key[:15],
        "createdAt": "2026-01-01T00:00:00Z",
        "expiresAt": "2026-01-02T00:00:00Z",
    }
    patch = {"spec": {"webhookAuth": {"keys": [entry]}}}
    cluster.kubectl(
        "patch", "namespacepolicy", "policy", "-n", namespace, "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip

    def refused() -> httpx.Response | None:
        rsp = github(ingress, key, PING, str(uuid.uuid4()), event="ping")
        return rsp if rsp.status_code == 401 and "KeyExpired" in rsp.text else None

    rsp = cluster.wait_for("the expired key refused", refused, 30)
    assert "expired at 2026-01-02T00:00:00Z" in rsp.json()["message"]
