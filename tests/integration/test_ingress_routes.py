"""Routes on the real API server: the built-in tasks on real published payloads (GitHub's
from @octokit/webhooks-examples, Jira's and Slack's documented samples), a filtered route
that selects and one that ignores, a template rendered into the stored Session, an
untrusted sender ignored, and a bad filter or template refused when the NamespacePolicy is
written (the real admission webhook over TLS). The ingress runs as the real process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from .conftest import free_port
from .test_admission_webhook import LABEL, webhook  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures"
SECRET = "routes-signing-secret"
SCRIPT = {"type": "script", "config": {"command": ["true"]}}


def example(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def ingress(cluster, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("ingress") / "ingress.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ambient.webhooks.ingress"],
        env={**cluster.env, "AMBIENT_INGRESS_HOST": "127.0.0.1", "AMBIENT_INGRESS_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    cluster.wait_for("ingress ready", lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def tenant(cluster, namespace: str, **spec: Any) -> dict[str, str]:
    """A NamespacePolicy taking signed github, jira and slack deliveries, plus ``spec``."""
    sources = ("github", "jira", "slack")
    keys = {s: f"{s}-{uuid.uuid4().hex}" for s in sources}
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "ingress-signing"},
            "data": {s: base64.b64encode(SECRET.encode()).decode() for s in sources},
        },
    )
    cluster.apply(
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "NamespacePolicy",
            "metadata": {"name": "policy", "namespace": namespace},
            "spec": {
                "webhookAuth": {
                    "apiKeys": {s: hashlib.sha256(k.encode()).hexdigest() for s, k in keys.items()},
                    "signingSecretRef": {"name": "ingress-signing"},
                },
                "defaults": {"framework": SCRIPT},
                **spec,
            },
        }
    )
    return keys


def github(url: str, key: str, payload: dict[str, Any], event: str) -> httpx.Response:
    data = json.dumps(payload).encode()
    return httpx.post(
        f"{url}/webhooks/github/{key}",
        content=data,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest(),
        },
    )


def wait_indexed(cluster, url: str, key: str) -> None:
    cluster.wait_for(
        "the key to be indexed",
        lambda: github(url, key, {"zen": "hi"}, "ping").status_code == 200,
        30,
    )


def stored_config(cluster, namespace: str, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    stored = cluster.session(namespace, resp.json()["session"])
    config: dict[str, Any] = stored["spec"]["framework"]["config"]
    return config


def test_built_in_tasks_on_real_payloads(cluster, ingress, namespace) -> None:
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, ingress, keys["github"])
    pull = example("github/pull_request.opened.json")
    config = stored_config(
        cluster, namespace, github(ingress, keys["github"], pull, "pull_request")
    )
    assert config["prompt"].startswith(
        f"Review pull request {pull['pull_request']['html_url']} in "
        f"{pull['repository']['full_name']}"
    )
    assert (config["repository"], config["ref"], config["command"]) == (
        pull["repository"]["html_url"],
        pull["pull_request"]["head"]["ref"],
        ["true"],
    )
    issue = example("github/issues.opened.json")
    config = stored_config(cluster, namespace, github(ingress, keys["github"], issue, "issues"))
    assert config["prompt"].startswith(f"Triage issue {issue['issue']['html_url']}")
    comment = example("github/issue_comment.created.json")
    comment["comment"]["body"] = "/ambient why does this fail?"
    config = stored_config(
        cluster, namespace, github(ingress, keys["github"], comment, "issue_comment")
    )
    assert "/ambient why does this fail?" in config["prompt"]
    assert comment["comment"]["html_url"] in config["prompt"]

    jira = json.dumps(example("jira/jira_issue_created.json")).encode()
    resp = httpx.post(
        f"{ingress}/webhooks/jira/{keys['jira']}",
        content=jira,
        headers={
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "X-Hub-Signature": "sha256="
            + hmac.new(SECRET.encode(), jira, hashlib.sha256).hexdigest(),
        },
    )
    config = stored_config(cluster, namespace, resp)
    assert config["prompt"].startswith(
        'Triage Jira issue ED-1: "The export button does nothing in Safari" (Bug).'
    )

    slack = json.dumps(example("slack/app_mention.json")).encode()
    ts = str(int(time.time()))
    resp = httpx.post(
        f"{ingress}/webhooks/slack/{keys['slack']}",
        content=slack,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
                timestamp=ts, body=slack
            ),
        },
    )
    config = stored_config(cluster, namespace, resp)
    assert "thread 1515449522.000016" in config["prompt"]
    assert "is it everything a river should be?" in config["prompt"]


def test_filtered_routes_select_and_ignore_and_render_the_task(cluster, ingress, namespace) -> None:
    route = {"source": "github", "events": ["pull_request.opened"]}
    keys = tenant(
        cluster,
        namespace,
        ingress={
            "routes": [
                {
                    **route,
                    "name": "release",
                    "filter": 'body.pull_request.base.ref.startsWith("release/")',
                    "task": "Check release PR {{ body.pull_request.number }}",
                },
                {
                    **route,
                    "name": "master",
                    "filter": 'body.pull_request.base.ref == "master" '
                    '&& headers["x-github-event"] == "pull_request"',
                    "task": "Review {{ body.pull_request.html_url }}: "
                    "{{ body.pull_request.title }}",
                    "config": {"model": "claude-{{ body.repository.name | lower }}"},
                    "framework": {"type": "claude-code"},
                },
            ]
        },
    )
    wait_indexed(cluster, ingress, keys["github"])
    pull = example("github/pull_request.opened.json")
    resp = github(ingress, keys["github"], pull, "pull_request")
    assert resp.status_code == 202, resp.text
    stored = cluster.session(namespace, resp.json()["session"])
    framework = stored["spec"]["framework"]
    assert framework["type"] == "claude-code"
    assert framework["config"]["prompt"] == (
        f"Review {pull['pull_request']['html_url']}: {pull['pull_request']['title']}"
    )
    assert framework["config"]["model"] == f"claude-{pull['repository']['name'].lower()}"

    pull["pull_request"]["base"]["ref"] = "develop"
    before = len(
        cluster.custom.list_namespaced_custom_object(
            "ambient.ai", "v1alpha1", namespace, "sessions"
        )["items"]
    )
    resp = github(ingress, keys["github"], pull, "pull_request")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ignored",
        "reason": "no route of spec.ingress.routes takes github event pull_request.opened",
    }
    issue = example("github/issues.opened.json")
    assert github(ingress, keys["github"], issue, "issues").json()["status"] == "ignored"
    after = cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions"
    )["items"]
    assert len(after) == before


def test_an_untrusted_sender_and_a_fork_are_ignored(cluster, ingress, namespace) -> None:
    keys = tenant(cluster, namespace)
    wait_indexed(cluster, ingress, keys["github"])
    pull = example("github/pull_request.opened.json")
    pull["pull_request"]["author_association"] = "FIRST_TIME_CONTRIBUTOR"
    resp = github(ingress, keys["github"], pull, "pull_request")
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert "author_association is FIRST_TIME_CONTRIBUTOR" in resp.json()["reason"]
    pull["pull_request"]["author_association"] = "MEMBER"
    pull["pull_request"]["head"]["repo"]["full_name"] = "mallory/fork"
    resp = github(ingress, keys["github"], pull, "pull_request")
    assert resp.status_code == 200 and "from a fork" in resp.json()["reason"]
    sessions = cluster.custom.list_namespaced_custom_object(
        "ambient.ai", "v1alpha1", namespace, "sessions"
    )["items"]
    assert sessions == []


def test_a_bad_filter_or_template_is_refused_when_the_policy_is_written(
    cluster,
    webhook,  # noqa: F811
) -> None:
    name = f"adm-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": name, "labels": {LABEL: webhook["run"]}}})
    try:
        route = {"source": "github", "events": ["pull_request.opened"]}

        def write(extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
            policy = {
                "apiVersion": "ambient.ai/v1alpha1",
                "kind": "NamespacePolicy",
                "metadata": {"name": "policy", "namespace": name},
                "spec": {"ingress": {"routes": [{**route, **extra}]}},
            }
            done: subprocess.CompletedProcess[str] = cluster.kubectl(
                "apply", "-f", "-", stdin=json.dumps(policy), check=False
            )
            return done

        def refused(extra: dict[str, Any], message: str) -> None:
            def check() -> bool:
                done = write(extra)
                return done.returncode != 0 and message in done.stderr

            cluster.wait_for(f"the webhook to refuse: {message}", check, 30)

        refused({"filter": "body.pull_request.base.ref =="}, "routes[0].filter: the filter is")
        refused({"task": "Review {{ body.pull_request.html_url }"}, "routes[0].task: the template")
        refused({"filter": "env.SECRET == 'x'"}, "a filter sees body, headers, event and source")
        too_long = write({"filter": "true || " * 200})
        assert too_long.returncode != 0 and "1024" in too_long.stderr  # the CRD schema
        good = write({"filter": 'body.pull_request.base.ref == "main"', "task": "{{ event }}"})
        assert good.returncode == 0, good.stderr
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
