"""The per-Session runner identity: ServiceAccount, Role (this Session only), RoleBinding."""

from __future__ import annotations

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions import builders
from ambient.runners.sdk.contract import ARTIFACTS_MOUNT


def test_identity_is_owned_by_the_session_and_named_for_it(make_session):
    session = make_session()
    sa, role, binding = builders.runner_identity(session)
    assert [m["kind"] for m in (sa, role, binding)] == ["ServiceAccount", "Role", "RoleBinding"]
    name = naming.runner_service_account(session.metadata.name)
    for m in (sa, role, binding):
        assert m["metadata"]["name"] == name
        assert m["metadata"]["namespace"] == session.metadata.namespace
        assert m["metadata"]["ownerReferences"] == [builders.owner_reference(session)]
    assert sa["automountServiceAccountToken"] is False


def test_role_grants_exactly_the_contract_on_this_session_only(make_session):
    session = make_session()
    role = builders.runner_role(session)
    grants = {(rule["resources"][0], verb) for rule in role["rules"] for verb in rule["verbs"]}
    assert grants == {
        ("sessions", "get"),
        ("sessions/status", "get"),
        ("sessions/status", "patch"),
        ("sessions/status", "update"),
    }
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["ambient.ai"]
        assert rule["resourceNames"] == [session.metadata.name]


def test_binding_ties_the_role_to_the_sessions_service_account(make_session):
    session = make_session()
    binding = builders.runner_role_binding(session)
    sa = naming.runner_service_account(session.metadata.name)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": sa,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa, "namespace": session.metadata.namespace}
    ]


def test_job_runs_as_the_session_sa_with_a_short_lived_projected_token(
    make_session, runner, settings
):
    session = make_session()
    job = builders.runner_job(session, runner, settings, "j-a1", "{}")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == naming.runner_service_account(session.metadata.name)
    assert pod["automountServiceAccountToken"] is False
    volume = next(v for v in pod["volumes"] if v["name"] == "runner-token")
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == builders.TOKEN_EXPIRY_SECONDS <= 3600
    assert "audience" not in token  # the API server's default audience
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["runner-token"]["mountPath"] == builders.TOKEN_DIR
    assert mounts["runner-token"]["readOnly"] is True


def test_artifact_store_wiring(make_body, runner, settings):
    body = make_body()
    body["spec"]["artifacts"] = {"storage": {"type": "pvc", "location": "team-claim"}}
    settings.s3_endpoint_url = "http://s3.internal:9000"
    settings.s3_bucket = "arts"
    job = builders.runner_job(Session.model_validate(body), runner, settings, "j-a1", "{}")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AWS_ENDPOINT_URL_S3"] == "http://s3.internal:9000"
    assert env["AMBIENT_S3_BUCKET"] == "arts"
    assert "AMBIENT_S3_PREFIX" not in env  # unset settings add nothing
    assert container["envFrom"] == [
        {"secretRef": {"name": settings.artifacts_secret, "optional": True}}
    ]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["artifacts"] == ARTIFACTS_MOUNT == "/var/run/ambient/artifacts"
    claim = next(v for v in pod["volumes"] if v["name"] == "artifacts")
    assert claim["persistentVolumeClaim"] == {"claimName": "team-claim"}


def test_no_claim_mounted_for_s3(make_session, runner, settings):
    job = builders.runner_job(make_session(), runner, settings, "j-a1", "{}")
    assert all(v["name"] != "artifacts" for v in job["spec"]["template"]["spec"]["volumes"])
