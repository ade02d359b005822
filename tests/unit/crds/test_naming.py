"""Deterministic, length-capped names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ambient.crds import naming

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_short_names_are_readable() -> None:
    assert naming.job_name("review-pr-42") == "review-pr-42-a1"
    assert naming.job_name("review-pr-42", 3) == "review-pr-42-a3"
    assert naming.context_configmap_name("review-pr-42-a1") == "review-pr-42-a1-ctx"
    assert naming.session_label_value("review-pr-42") == "review-pr-42"


@pytest.mark.parametrize("length", [1, 59, 60, 61, 62, 63, 64, 100, 253])
def test_names_fit_in_63(length: int) -> None:
    session = ("abc-" * 80)[: length - 1] + "z"
    job = naming.job_name(session)
    for name in (job, naming.context_configmap_name(job), naming.session_label_value(session)):
        assert len(name) <= naming.MAX_NAME
        assert DNS_LABEL.match(name), name
    assert job.endswith("-a1")
    assert naming.context_configmap_name(job).endswith("-ctx")


def test_exactly_fitting_name_is_kept() -> None:
    session = "s" * 60
    assert naming.job_name(session) == session + "-a1"
    assert naming.session_label_value("s" * 63) == "s" * 63


def test_names_are_deterministic() -> None:
    session = "x" * 200
    assert naming.job_name(session) == naming.job_name(session)
    assert naming.session_label_value(session) == naming.session_label_value(session)


def test_long_names_differing_only_at_the_end_stay_distinct() -> None:
    a, b = "team-alpha-" + "q" * 100 + "-1", "team-alpha-" + "q" * 100 + "-2"
    assert naming.job_name(a) != naming.job_name(b)
    assert naming.session_label_value(a) != naming.session_label_value(b)
    assert naming.context_configmap_name(naming.job_name(a)) != naming.context_configmap_name(
        naming.job_name(b)
    )


def test_attempts_are_distinct_for_long_names() -> None:
    session = "r" * 100
    assert naming.job_name(session, 1) != naming.job_name(session, 2)


def test_shortening_never_leaves_a_double_dash_or_dot() -> None:
    # The cut falls right after a '-' (and a '.'), which must not survive before the hash.
    session = "a" * 49 + ".-" + "b" * 30
    name = naming.job_name(session)
    assert "--" not in name and ".-" not in name
    assert len(name) <= naming.MAX_NAME


# --- object names a tenant's object may name ----------------------------------------------

VALID_OBJECT_NAMES = ["a", "ingress-secrets", "team-alpha.signing", "0", "a" * 253]
INVALID_OBJECT_NAMES = [
    "",
    "../../team-alpha/secrets/x",
    "..",
    ".",
    "x/y",
    "Secret",
    "-x",
    "x-",
    "x..y",
    "x\n",
    "sécret",
    "a" * 254,
    "x%2Fy",
    " x",
]


@pytest.mark.parametrize("name", VALID_OBJECT_NAMES)
def test_object_names_that_kubernetes_gives(name: str) -> None:
    assert naming.is_dns_subdomain(name)
    assert naming.object_name(name) == name


@pytest.mark.parametrize("name", [*INVALID_OBJECT_NAMES, None, 3, b"x"])
def test_names_no_object_can_have_are_refused_with_a_readable_error(name: object) -> None:
    assert not naming.is_dns_subdomain(name)
    with pytest.raises(naming.InvalidNameError, match=r"Secret name .* DNS-1123 subdomain"):
        naming.object_name(name, "Secret")


def test_a_very_long_name_is_shortened_in_the_error() -> None:
    with pytest.raises(naming.InvalidNameError) as refused:
        naming.object_name("/" * 5000)
    assert len(str(refused.value)) < 300


@pytest.mark.parametrize("name", ["team-alpha", "a", "a" * 63])
def test_namespace_names(name: str) -> None:
    assert naming.namespace_name(name) == name


@pytest.mark.parametrize("name", ["", "a.b", "a/b", "..", "A", "a" * 64, "a\n"])
def test_namespace_names_are_dns_labels(name: str) -> None:
    with pytest.raises(naming.InvalidNameError, match="namespace"):
        naming.namespace_name(name)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.text(max_size=300),
        st.from_regex(r"[a-z0-9./%-]{1,20}", fullmatch=True),
    )
)
def test_an_accepted_name_is_always_one_path_segment(name: str) -> None:
    """Whatever a tenant writes: refused, or a name that stays one segment of an API path
    (no '/', no '%' escape, not '.' or '..') and that Kubernetes itself would accept."""
    try:
        accepted = naming.object_name(name)
    except naming.InvalidNameError:
        return
    assert "/" not in accepted and "%" not in accepted
    assert accepted not in (".", "..") and ".." not in accepted
    assert accepted == accepted.lower().strip() and 1 <= len(accepted) <= 253
