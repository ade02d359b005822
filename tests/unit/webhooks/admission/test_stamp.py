"""The mutating webhook's stamps: the creator from userInfo, a canceller who did not say."""

from __future__ import annotations

from typing import Any

from ambient.crds.naming import ANNOTATION_CANCELLED_BY, ANNOTATION_CREATED_BY_USER
from ambient.webhooks.admission.stamp import patch, stamps


def _request(
    operation: str,
    annotations: dict[str, str] | None,
    old: dict[str, Any] | None = None,
    *,
    cancel: bool = False,
    approval: bool = True,
    user: str = "dana",
    sub: str = "",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "s1"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "resource": {"group": "ambient.ai", "version": "v1alpha1", "resource": "sessions"},
        "subResource": sub,
        "operation": operation,
        "userInfo": {"username": user, "groups": ["developers"]},
        "object": {
            "metadata": metadata,
            "spec": {"cancel": cancel, "policy": {"approvalRequired": approval}},
        },
        "oldObject": old,
    }


def test_a_create_is_stamped_with_the_authenticated_creator_whatever_it_says() -> None:
    assert stamps(_request("CREATE", None)) == {ANNOTATION_CREATED_BY_USER: "dana"}
    forged = _request("CREATE", {ANNOTATION_CREATED_BY_USER: "lee", "x": "1"})
    assert patch(forged) == [
        {"op": "add", "path": "/metadata/annotations/ambient.ai~1created-by-user", "value": "dana"}
    ]
    assert patch(_request("CREATE", None)) == [
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {ANNOTATION_CREATED_BY_USER: "dana"},
        }
    ]
    assert patch(_request("CREATE", {ANNOTATION_CREATED_BY_USER: "dana"})) == []


def test_a_create_that_waits_for_no_approval_is_not_stamped() -> None:
    """The creator serves only four eyes; a forged one is the validating webhook's."""
    assert stamps(_request("CREATE", None, approval=False)) == {}
    assert patch(_request("CREATE", {ANNOTATION_CREATED_BY_USER: "lee"}, approval=False)) == []


def test_an_update_keeps_the_creator() -> None:
    old = {"metadata": {"annotations": {ANNOTATION_CREATED_BY_USER: "lee"}}, "spec": {}}
    assert stamps(_request("UPDATE", {}, old)) == {ANNOTATION_CREATED_BY_USER: "lee"}
    assert stamps(_request("UPDATE", {ANNOTATION_CREATED_BY_USER: "lee"}, old)) == {}


def test_a_cancel_without_a_canceller_names_who_cancelled() -> None:
    old = {"metadata": {"annotations": {}}, "spec": {"cancel": False}}
    assert stamps(_request("UPDATE", {}, old, cancel=True)) == {ANNOTATION_CANCELLED_BY: "dana"}
    said = _request("UPDATE", {ANNOTATION_CANCELLED_BY: "dana"}, old, cancel=True)
    assert stamps(said) == {}
    already = {"metadata": {}, "spec": {"cancel": True}}
    assert stamps(_request("UPDATE", {}, already, cancel=True)) == {}


def test_status_writes_and_other_resources_are_not_stamped() -> None:
    assert stamps(_request("CREATE", None, sub="status")) == {}
    other = _request("CREATE", None)
    other["resource"]["resource"] = "namespacepolicies"
    assert stamps(other) == {}
