"""Routes decide which Session a delivery starts: order, filters, trust, rendering."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ambient.crds.models import IngressRoute, NamespacePolicySpec
from ambient.webhooks.ingress import events, routing
from ambient.webhooks.ingress.compiled import MAX_RENDERED

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SCRIPT = {"type": "script", "config": {"command": ["true"]}}


def gh(payload: dict[str, Any], event: str) -> events.Delivery:
    headers = {"x-github-event": event, "x-github-delivery": GUID}
    return events.parse("github", headers, json.dumps(payload).encode(), "application/json")


def decide(delivery: events.Delivery, spec: dict[str, Any]) -> routing.Routed:
    parsed = NamespacePolicySpec.model_validate(spec)
    return routing.decide(
        delivery,
        {"x-github-event": delivery.event.split(".")[0]},
        namespace="team-a",
        ingress=parsed.ingress,
        defaults=parsed.defaults,
        table=routing.compile_routes(parsed.ingress.routes),
    )


def routes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"defaults": {"framework": SCRIPT}, "ingress": {"routes": list(items)}}


def test_the_implicit_route_renders_the_built_in_review_task(github_example) -> None:
    payload = github_example("pull_request.opened")
    routed = decide(gh(payload, "pull_request"), {"defaults": {"framework": SCRIPT}})
    assert routed.manifest is not None
    config = routed.manifest["spec"]["framework"]["config"]
    assert config["command"] == ["true"]
    assert config["prompt"].startswith(f"Review pull request {payload['pull_request']['html_url']}")
    assert payload["pull_request"]["title"] in config["prompt"]
    assert config["repository"] == payload["repository"]["html_url"]
    assert config["ref"] == payload["pull_request"]["head"]["ref"]


def test_a_prompt_in_the_defaults_is_kept(github_example) -> None:
    framework = {"type": "claude-code", "config": {"prompt": "fixed"}}
    routed = decide(
        gh(github_example("issues.opened"), "issues"), {"defaults": {"framework": framework}}
    )
    assert routed.manifest is not None
    assert routed.manifest["spec"]["framework"]["config"]["prompt"] == "fixed"


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("issues.opened", "Triage issue"),
        ("issue_comment.created", "@"),
        ("pull_request_review_comment.created", "@"),
    ],
)
def test_each_default_github_event_gets_a_task(github_example, name: str, start: str) -> None:
    payload = github_example(name)
    if "comment" in payload:
        payload["comment"]["body"] = "/ambient please look"
    event = name.partition(".")[0]
    routed = decide(gh(payload, event), {"defaults": {"framework": SCRIPT}})
    assert routed.manifest is not None, routed.ignored
    assert routed.manifest["spec"]["framework"]["config"]["prompt"].startswith(start)


def test_the_first_matching_route_decides_and_filters_select(github_example) -> None:
    spec = routes(
        {
            "name": "docs",
            "source": "github",
            "events": ["pull_request.*"],
            "filter": 'body.pull_request.base.ref == "docs"',
            "task": "docs {{ body.number }}",
        },
        {
            "name": "main",
            "source": "github",
            "events": ["pull_request.opened"],
            "filter": 'body.pull_request.base.ref == "master" && source == "github"',
            "task": "Review {{ body.pull_request.html_url }}: {{ body.pull_request.title }}",
            "config": {"model": "{{ body.repository.name }}"},
            "timeoutSeconds": 120,
        },
        {"name": "rest", "source": "github", "events": ["*"], "task": "rest"},
    )
    payload = github_example("pull_request.opened")
    routed = decide(gh(payload, "pull_request"), spec)
    assert routed.route == "main" and routed.manifest is not None
    config = routed.manifest["spec"]["framework"]["config"]
    pull = payload["pull_request"]
    assert config["prompt"] == f"Review {pull['html_url']}: {pull['title']}"
    assert config["model"] == payload["repository"]["name"]
    assert routed.manifest["spec"]["timeoutSeconds"] == 120
    payload["pull_request"]["base"]["ref"] = "docs"
    assert decide(gh(payload, "pull_request"), spec).route == "docs"
    payload["pull_request"]["base"]["ref"] = "other"
    assert decide(gh(payload, "pull_request"), spec).route == "rest"


def test_no_matching_route_is_ignored_with_the_reason(github_example) -> None:
    spec = routes({"source": "github", "events": ["issues.opened"]})
    routed = decide(gh(github_example("pull_request.opened"), "pull_request"), spec)
    assert routed.manifest is None
    assert routed.ignored == (
        "no route of spec.ingress.routes takes github event pull_request.opened"
    )


def test_a_filter_that_fails_on_the_payload_does_not_match(github_example) -> None:
    spec = routes(
        {"name": "a", "source": "github", "events": ["*"], "filter": "body.nothing.here == 1"}
    )
    routed = decide(gh(github_example("pull_request.opened"), "pull_request"), spec)
    assert routed.manifest is None and routed.ignored is not None
    assert "route a: the filter failed" in routed.ignored


def test_a_template_error_is_a_refusal_with_the_reason(github_example) -> None:
    spec = routes({"name": "t", "source": "github", "events": ["*"], "task": "{{ body.nope }}"})
    routed = decide(gh(github_example("pull_request.opened"), "pull_request"), spec)
    assert routed.manifest is None
    assert routed.ignored is not None and routed.ignored.startswith(
        "route t: the task could not be rendered: UndefinedError"
    )


def test_output_past_the_bound_is_refused(github_example) -> None:
    text = "x" * 4000 + "{{ 'y' * 9999 }}"
    spec = routes({"name": "big", "source": "github", "events": ["*"], "task": text})
    payload = github_example("pull_request.opened")
    payload["pull_request"]["body"] = "z"
    routed = decide(gh(payload, "pull_request"), spec)
    assert routed.manifest is not None  # under the bound
    spec["ingress"]["routes"][0]["task"] = "{{ body.pull_request.body }}"
    payload["pull_request"]["body"] = "z" * (MAX_RENDERED + 1)
    routed = decide(gh(payload, "pull_request"), spec)
    assert routed.ignored is not None and "longer than" in routed.ignored


def test_untrusted_senders_and_forks_are_ignored_unless_the_route_widens_it(
    github_example,
) -> None:
    payload = github_example("pull_request.opened")
    payload["pull_request"]["author_association"] = "CONTRIBUTOR"
    routed = decide(gh(payload, "pull_request"), {})
    assert routed.ignored is not None and "author_association is CONTRIBUTOR" in routed.ignored
    widened = routes(
        {"source": "github", "events": ["*"], "allowUntrustedSenders": True, "task": "ok"}
    )
    assert decide(gh(payload, "pull_request"), widened).manifest is not None
    payload["pull_request"]["author_association"] = "MEMBER"
    payload["pull_request"]["head"]["repo"]["full_name"] = "someone/fork"
    routed = decide(gh(payload, "pull_request"), widened)
    assert routed.ignored is not None and "comes from a fork (someone/fork)" in routed.ignored
    widened["ingress"]["routes"][0]["allowForks"] = True
    routed = decide(gh(payload, "pull_request"), widened)
    assert routed.manifest is not None
    number = payload["pull_request"]["number"]
    assert routed.manifest["spec"]["framework"]["config"]["ref"] == f"refs/pull/{number}/head"


def test_a_comment_by_an_outsider_is_ignored(github_example) -> None:
    payload = github_example("issue_comment.created")
    payload["comment"]["body"] = "/ambient do it"
    payload["comment"]["author_association"] = "NONE"
    routed = decide(gh(payload, "issue_comment"), {})
    assert routed.ignored is not None and "author_association is NONE" in routed.ignored


def test_bots_start_nothing_on_any_route(github_example) -> None:
    payload = github_example("issues.opened")
    payload["sender"]["type"] = "Bot"
    routed = decide(gh(payload, "issues"), routes({"source": "github", "events": ["*"]}))
    assert routed.ignored == "sent by a bot account"


def test_a_route_that_does_not_compile_refuses_what_it_would_take(github_example) -> None:
    route = IngressRoute.model_validate(
        {"name": "bad", "source": "github", "events": ["*"], "filter": "body.x =="}
    )
    table = routing.compile_routes([route, IngressRoute(source="github", events=["*"])])
    parsed = NamespacePolicySpec()
    routed = routing.decide(
        gh(github_example("issues.opened"), "issues"),
        {},
        namespace="team-a",
        ingress=parsed.ingress,
        defaults=parsed.defaults,
        table=table,
    )
    assert routed.ignored is not None and routed.ignored.startswith("route bad does not compile")


def test_problems_name_each_field_that_does_not_compile() -> None:
    bad = [
        IngressRoute.model_validate(
            {
                "source": "github",
                "events": ["*"],
                "filter": "nope(1)",
                "task": "{% for %}",
                "config": {"model": "{{ x }"},
            }
        )
    ]
    found = routing.problems(bad)
    assert [p.split(":")[0] for p in found] == [
        "spec.ingress.routes[0].filter",
        "spec.ingress.routes[0].task",
        "spec.ingress.routes[0].config.model",
    ]


@given(
    st.lists(st.sampled_from(["issues", "pull_request", "push", "issue_comment"]), max_size=4),
    st.sampled_from(["opened", "closed", "created"]),
    st.sampled_from(["issues", "pull_request", "push"]),
)
def test_event_patterns_match_as_the_implicit_route_does(
    names: list[str], action: str, event: str
) -> None:
    patterns = [f"{n}.*" for n in names] + [f"{event}.{action}"]
    full = f"{event}.{action}"
    assert routing.event_matches(full, patterns)
    others = [p for p in patterns if not p.startswith(event + ".")]
    assert routing.event_matches(full, others) == events._matches(full, others)


@given(st.sampled_from(["OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "NONE", "FIRST_TIMER"]))
def test_only_owners_members_and_collaborators_are_trusted(association: str) -> None:
    payload = {"action": "opened", "issue": {"author_association": association}}
    delivery = events.Delivery("github", "issues.opened", "d", payload)
    trusted = routing.trust_reason(delivery) is None
    assert trusted == (association in routing.TRUSTED_ASSOCIATIONS)
    assert routing.trust_reason(delivery, allow_untrusted=True) is None


# Alertmanager's webhook payload, version 4, in the shape its documentation gives (the
# source's parsing is another module's: here only the built-in task's rendering).
ALERT = {
    "version": "4",
    "groupKey": '{}:{alertname="KubePodCrashLooping"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "ambient",
    "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {
        "alertname": "KubePodCrashLooping",
        "namespace": "shop",
        "severity": "warning",
    },
    "commonAnnotations": {"summary": "Pod is crash looping."},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "cart-1"},
            "annotations": {"description": "Pod shop/cart-1 is in waiting state (CrashLoop)."},
            "startsAt": "2026-12-05T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": "a1b2c3d4e5f60708",
        }
    ],
}


def test_the_built_in_alert_task_names_the_alerts() -> None:
    delivery = events.Delivery("alertmanager", "firing", "g-1", ALERT)
    spec = routes({"source": "alertmanager", "events": ["firing"]})
    routed = decide(delivery, spec)
    assert routed.manifest is not None, routed.ignored
    prompt = routed.manifest["spec"]["framework"]["config"]["prompt"]
    assert prompt.startswith(
        "Investigate the firing alert KubePodCrashLooping (severity warning) in namespace shop."
    )
    assert "Pod is crash looping." in prompt
    assert "- alertname=KubePodCrashLooping, namespace=shop, pod=cart-1 since 2026-12-05" in prompt
    assert "(CrashLoop)" in prompt


@pytest.mark.parametrize(
    ("source", "event", "payload", "expected"),
    [
        (
            "jira",
            "comment_created",
            {
                "webhookEvent": "comment_created",
                "comment": {"body": "please fix", "author": {"displayName": "Mia"}},
                "issue": {"key": "ED-1", "fields": {"summary": "Export"}},
            },
            'Mia commented on Jira issue ED-1 ("Export"):\n\nplease fix',
        ),
        (
            "slack",
            "slash_command",
            {"command": "/ambient", "text": "fix the build", "user_id": "U1", "channel_id": "C1"},
            "<@U1> ran /ambient in Slack (channel C1):\n\nfix the build",
        ),
    ],
)
def test_jira_comments_and_slack_commands_get_a_task(
    source: str, event: str, payload: dict[str, Any], expected: str
) -> None:
    routed = decide(events.Delivery(source, event, "d-1", payload), {})
    assert routed.manifest is not None
    assert routed.manifest["spec"]["framework"]["config"]["prompt"].startswith(expected)


def test_a_built_in_task_renders_what_a_payload_lacks_as_empty() -> None:
    # Only who opened it is known: the task renders the rest as empty.
    lacking = {"action": "opened", "pull_request": {"author_association": "OWNER"}}
    delivery = events.Delivery("github", "pull_request.opened", "d", lacking)
    routed = decide(delivery, {})
    assert routed.manifest is not None
    assert routed.manifest["spec"]["framework"]["config"]["prompt"].startswith("Review pull")


def test_templates_never_see_the_key_sent_as_a_bearer_token(github_example) -> None:
    parsed = NamespacePolicySpec.model_validate(
        routes({"source": "github", "events": ["*"], "task": "{{ headers | tojson }}"})
    )
    routed = routing.decide(
        gh(github_example("issues.opened"), "issues"),
        {"authorization": "Bearer the-key", "x-github-event": "issues"},
        namespace="team-a",
        ingress=parsed.ingress,
        defaults=parsed.defaults,
        table=routing.compile_routes(parsed.ingress.routes),
    )
    assert routed.manifest is not None
    prompt = routed.manifest["spec"]["framework"]["config"]["prompt"]
    assert "the-key" not in prompt and "issues" in prompt


def test_a_pull_request_event_without_an_author_association_is_not_trusted() -> None:
    delivery = events.Delivery("github", "pull_request.opened", "d", {"action": "opened"})
    routed = decide(delivery, {})
    assert routed.manifest is None
    assert routed.ignored is not None and "author_association is missing" in routed.ignored
