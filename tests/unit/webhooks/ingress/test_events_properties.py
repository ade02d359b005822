"""Event parsing and naming under generated input (issue 17, deliverable 4): a body and
headers either parse or are refused with MalformedError or MediaTypeError (422/415),
never another exception; every Session name is a valid DNS label, the same for the same
delivery, and for GitHub and Jira the same for the same body whatever the delivery id."""

from __future__ import annotations

import json
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambient.webhooks.ingress import events

EXAMPLES = int(os.environ.get("AMBIENT_FUZZ_EXAMPLES", "300"))
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["action", "webhookEvent", "type", "event", "event_id", "payload"]),
        json_values,
    ).map(lambda v: json.dumps(v).encode()),
    st.text(max_size=60).map(lambda t: f"command=%2Fx&trigger_id={t}".encode()),
)
headers = st.dictionaries(
    st.sampled_from(["x-github-event", "x-github-delivery", "x-atlassian-webhook-identifier"]),
    st.text(max_size=140),
)
content_types = st.sampled_from(
    [events.JSON, events.FORM, "text/plain", None, "application/json; charset=utf-8"]
)


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(events.SOURCES), headers, bodies, content_types)
def test_parse_parses_or_refuses(source, heads, body, content_type) -> None:
    try:
        delivery = events.parse(source, heads, body, content_type)
    except (events.MalformedError, events.MediaTypeError):
        return
    name = events.name_of(delivery)
    assert len(name) <= events.MAX_NAME and DNS_LABEL.fullmatch(name), name
    assert name == events.name_of(events.parse(source, heads, body, content_type))
    if source in events.BODY_NAMED:
        other = {**heads, "x-github-delivery": "other", "x-atlassian-webhook-identifier": "o"}
        assert events.name_of(events.parse(source, other, body, content_type)) == name


@settings(max_examples=EXAMPLES)
@given(st.sampled_from(events.SOURCES), st.text(min_size=1, max_size=128))
def test_session_names_are_dns_labels(source: str, delivery_id: str) -> None:
    name = events.session_name(source, delivery_id)
    assert len(name) <= events.MAX_NAME and DNS_LABEL.fullmatch(name)
