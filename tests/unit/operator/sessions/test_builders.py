"""The runner Job and context ConfigMap manifests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ambient.crds import naming
from ambient.crds.models import Session
from ambient.operator.sessions import builders
from ambient.operator.settings import OperatorSettings
from ambient.runners.registry import ModelPrice, Registry, ResolvedRunner, load, resolve
from ambient.runners.sdk import contract

MakeSession = Callable[..., Session]
UID = "5b1c2f4e-0000-4000-8000-000000000001"


def _build(session: Session, runner: ResolvedRunner, settings: OperatorSettings) -> dict[str, Any]:
    job_name = naming.job_name(session.metadata.name, 1)
    context = builders.context_json(builders.runner_context(session, runner, job_name))
    return builders.runner_job(session, runner, settings, job_name, context)


def _pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def _container(job: dict[str, Any]) -> dict[str, Any]:
    containers = _pod_spec(job)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_job_name_and_owner(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    job = _build(make_session(), runner, settings)
    meta = job["metadata"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert meta["name"] == "review-pr-42-a1"
    assert meta["namespace"] == "team-alpha"
    assert "generateName" not in meta
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ambient.ai/v1alpha1",
            "kind": "Session",
            "name": "review-pr-42",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_job_is_deterministic(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    first = _build(make_session(), runner, settings)
    second = _build(make_session(), runner, settings)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_labels_on_job_and_pod(
    make_session: MakeSession, registry: Registry, settings: OperatorSettings
) -> None:
    runner = resolve(registry, "langgraph")
    job = _build(make_session(framework="langgraph"), runner, settings)
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels[naming.LABEL_SESSION] == "review-pr-42"
        assert labels[naming.LABEL_FRAMEWORK] == "langgraph"
        assert labels[naming.LABEL_MANAGED_BY] == "ambient-operator"


def test_long_session_name_gives_valid_label_and_job_name(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    name = "s" * 120
    job = _build(make_session(name=name), runner, settings)
    assert len(job["metadata"]["name"]) <= 63
    assert len(job["metadata"]["labels"][naming.LABEL_SESSION]) <= 63
    assert job["metadata"]["ownerReferences"][0]["name"] == name


def test_job_spec_limits(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    spec = _build(make_session(), runner, settings)["spec"]
    assert spec["backoffLimit"] == settings.job_backoff_limit == 0
    assert spec["activeDeadlineSeconds"] == runner.timeout_seconds == 3600
    assert spec["ttlSecondsAfterFinished"] == settings.job_ttl_seconds == 86_400
    assert _pod_spec({"spec": spec})["restartPolicy"] == "Never"


def test_timeout_comes_from_the_session_when_set(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    job = _build(make_session(timeout_seconds=120), runner, settings)
    assert job["spec"]["activeDeadlineSeconds"] == 120


def test_settings_are_honoured(make_session: MakeSession, runner: ResolvedRunner) -> None:
    tuned = OperatorSettings(job_backoff_limit=2, job_ttl_seconds=60, runner_user_id=1234)
    job = _build(make_session(), runner, tuned)
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert _pod_spec(job)["securityContext"]["runAsUser"] == 1234


def test_restricted_security_context(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    job = _build(make_session(), runner, settings)
    pod = _pod_spec(job)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == settings.runner_user_id != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod and "hostPID" not in pod
    sc = _container(job)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc or sc["privileged"] is False


def test_container_runs_the_registry_image_and_command(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    container = _container(_build(make_session(), runner, settings))
    assert container["image"] == runner.image == "ambient/runner-script:0.1.0"
    assert container["command"] == ["ambient-runner", "script"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AMBIENT_CONTEXT_FILE"] == "/var/run/ambient/session.json"
    assert env["AMBIENT_SESSION_NAME"] == "review-pr-42"
    assert env["AMBIENT_SESSION_NAMESPACE"] == "team-alpha"


def test_context_annotation_is_mounted_through_the_downward_api(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    session = make_session(config={"command": ["make", "test"]})
    job = _build(session, runner, settings)
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    context = json.loads(annotations[naming.ANNOTATION_CONTEXT])

    assert context["schema"] == contract.CONTEXT_SCHEMA
    # the runner library reads what the builder wrote
    assert contract.Context.parse(json.dumps(context)).name == context["session"]["name"]
    assert context["session"] == {
        "name": "review-pr-42",
        "namespace": "team-alpha",
        "uid": UID,
        "jobName": "review-pr-42-a1",
    }
    assert context["trigger"]["source"] == "github"
    assert context["trigger"]["deliveryId"] == "d-1"
    assert context["trigger"]["payload"] == {"number": 42}
    assert context["framework"] == {
        "type": "script",
        "version": "1.0",
        "config": {"command": ["make", "test"]},
    }
    assert context["policy"]["modelConstraints"]["budget"] == "10.00"
    assert context["policy"]["toolConstraints"]["allowed"] == ["Bash"]
    assert context["timeoutSeconds"] == 3600

    volume = next(v for v in _pod_spec(job)["volumes"] if v["name"] == "context")
    items = volume["downwardAPI"]["items"]
    assert items == [
        {
            "path": "session.json",
            "fieldRef": {"fieldPath": "metadata.annotations['ambient.ai/context']"},
        }
    ]
    mount = next(m for m in _container(job)["volumeMounts"] if m["name"] == "context")
    assert mount == {"name": "context", "mountPath": "/var/run/ambient", "readOnly": True}


def test_context_json_is_compact_and_sorted() -> None:
    assert builders.context_json({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'


def test_writable_paths_are_volumes(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    """With a read-only root filesystem, /tmp and /workspace must be volumes."""
    job = _build(make_session(), runner, settings)
    volumes = {v["name"]: v for v in _pod_spec(job)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(job)["volumeMounts"]}
    assert mounts["/tmp"] in volumes and "emptyDir" in volumes[mounts["/tmp"]]
    assert mounts["/workspace"] in volumes and "emptyDir" in volumes[mounts["/workspace"]]
    assert set(mounts.values()) == set(volumes)


def test_only_simulation_annotations_reach_the_pod(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    session = make_session(
        annotations={
            "sim.ambient.ai/exit-code": "3",
            "sim.ambient.ai/duration": "5s",
            naming.ANNOTATION_APPROVED_BY: "alice",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "sim.ambient.ai.example.com/other": "no",
        }
    )
    job = _build(session, runner, settings)
    pod_annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert set(pod_annotations) == {
        "sim.ambient.ai/exit-code",
        "sim.ambient.ai/duration",
        naming.ANNOTATION_CONTEXT,
    }
    assert pod_annotations["sim.ambient.ai/exit-code"] == "3"
    assert "annotations" not in job["metadata"]


def test_large_context_mounts_the_configmap(
    make_session: MakeSession, runner: ResolvedRunner
) -> None:
    small = OperatorSettings(max_inline_context_bytes=1024)
    session = make_session(payload={"blob": "y" * 4096})
    job_name = naming.job_name(session.metadata.name, 1)
    context = builders.context_json(builders.runner_context(session, runner, job_name))
    job = builders.runner_job(session, runner, small, job_name, context)
    configmap = builders.context_configmap(session, runner, job_name, context)

    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == naming.context_configmap_name(job_name)
    assert configmap["metadata"]["namespace"] == "team-alpha"
    assert configmap["metadata"]["ownerReferences"][0]["controller"] is True
    assert configmap["metadata"]["labels"][naming.LABEL_SESSION] == "review-pr-42"
    assert configmap["data"] == {"session.json": context}

    volume = next(v for v in _pod_spec(job)["volumes"] if v["name"] == "context")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert naming.ANNOTATION_CONTEXT not in job["spec"]["template"]["metadata"]["annotations"]
    mount = next(m for m in _container(job)["volumeMounts"] if m["name"] == "context")
    assert mount["mountPath"] == "/var/run/ambient"


def test_manifest_does_not_alias_the_registry(
    make_session: MakeSession, settings: OperatorSettings
) -> None:
    own = load()  # a private registry: this test mutates what the manifest shares
    job = _build(make_session(), resolve(own, "script"), settings)
    _container(job)["resources"]["limits"]["cpu"] = "64"
    assert resolve(own, "script").resources.limits["cpu"] == "2"


def test_credentials_come_from_the_fixed_secrets_and_home_is_on_the_workspace(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    container = _container(_build(make_session(), runner, settings))
    env = {e["name"]: e for e in container["env"]}
    assert env["HOME"]["value"] == builders.RUNNER_HOME == "/workspace/.home"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[builders.WORKSPACE] == "workspace"
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e}
    assert refs == {
        "ANTHROPIC_API_KEY": {
            "name": "ambient-model-credentials",
            "key": "anthropic-api-key",
            "optional": True,
        },
        "ANTHROPIC_BASE_URL": {
            "name": "ambient-model-credentials",
            "key": "anthropic-base-url",
            "optional": True,
        },
        "OPENAI_API_KEY": {
            "name": "ambient-model-credentials",
            "key": "openai-api-key",
            "optional": True,
        },
        "AMBIENT_GIT_TOKEN": {
            "name": "ambient-source-credentials",
            "key": "github-token",
            "optional": True,
        },
    }
    # The cluster default, when the chart names one, under AMBIENT_DEFAULT_*.
    settings.model_credentials_default_secret = "shared-model-key"
    container = _container(_build(make_session(), runner, settings))
    default = next(e for e in container["env"] if e["name"] == "AMBIENT_DEFAULT_ANTHROPIC_API_KEY")
    assert default["valueFrom"]["secretKeyRef"] == {
        "name": "shared-model-key",
        "key": "anthropic-api-key",
        "optional": True,
    }


def test_the_context_carries_the_policys_blocked_tools_and_the_registrys_prices(
    make_session: MakeSession, registry: Registry
) -> None:
    priced = registry.model_copy(deep=True)
    version = priced.frameworks["script"].versions["1.0"]
    version.pricing = {"m": ModelPrice(input_per_m_tok="3", output_per_m_tok="15")}
    runner = resolve(priced, "script")
    session = make_session()
    config = {**session.spec.framework.config, "pricing": {"m": {"inputPerMTok": "0"}}}
    framework = session.spec.framework.model_copy(update={"config": config})
    session = session.model_copy(
        update={"spec": session.spec.model_copy(update={"framework": framework})}
    )
    context = contract.Context.parse(
        builders.context_json(builders.runner_context(session, runner, "j-a1", ("Bash",)))
    )
    assert context.blocked_tools == ["Bash"]
    assert context.pricing == {"m": {"inputPerMTok": "3", "outputPerMTok": "15"}}
    assert contract.price(context.pricing, "m", 1_000_000, 0) == 3


def test_n8n_runner_gets_its_credentials_from_the_fixed_secret(
    make_session: MakeSession, registry: Registry, settings: OperatorSettings
) -> None:
    session = make_session(framework="n8n", config={"workflow": "w", "prompt": "p"})
    env = _container(_build(session, resolve(registry, "n8n"), settings))["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    n8n = {k: v for k, v in refs.items() if v["name"] == "ambient-n8n-credentials"}
    assert n8n == {
        "N8N_API_KEY": {"name": "ambient-n8n-credentials", "key": "n8n-api-key", "optional": True},
        "N8N_BASE_URL": {
            "name": "ambient-n8n-credentials",
            "key": "n8n-base-url",
            "optional": True,
        },
        "N8N_WEBHOOK_TOKEN": {
            "name": "ambient-n8n-credentials",
            "key": "n8n-webhook-token",
            "optional": True,
        },
    }
    # Other runners never see the n8n Secret.
    other = _container(_build(make_session(), resolve(registry, "script"), settings))["env"]
    assert not [
        e for e in other
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "ambient-n8n-credentials"
    ]  # fmt: skip


def test_module_configmap_is_mounted_read_only_where_the_runners_look(
    make_session: MakeSession, registry: Registry, settings: OperatorSettings
) -> None:
    config = {"graph": "team_graph:graph", "prompt": "p", "moduleConfigMap": "team-graph"}
    job = _build(
        make_session(framework="langgraph", config=config), resolve(registry, "langgraph"), settings
    )
    volumes = {v["name"]: v for v in _pod_spec(job)["volumes"]}
    assert volumes["agent-module"] == {"name": "agent-module", "configMap": {"name": "team-graph"}}
    mount = next(m for m in _container(job)["volumeMounts"] if m["name"] == "agent-module")
    assert mount == {"name": "agent-module", "mountPath": "/opt/ambient/agent", "readOnly": True}
    from ambient.runners.sdk.target import DEFAULT_AGENT_PATH  # noqa: PLC0415

    assert mount["mountPath"] == DEFAULT_AGENT_PATH
    # A name that is not a ConfigMap name mounts nothing.
    bad = dict(config, moduleConfigMap="../etc")
    job = _build(
        make_session(framework="langgraph", config=bad), resolve(registry, "langgraph"), settings
    )
    assert "agent-module" not in {v["name"] for v in _pod_spec(job)["volumes"]}


def test_the_delivery_s_trace_id_reaches_the_runner(
    make_session: MakeSession, runner: ResolvedRunner, settings: OperatorSettings
) -> None:
    traced = make_session(annotations={naming.ANNOTATION_TRACE_ID: "f00d"})
    env = {e["name"]: e.get("value") for e in _container(_build(traced, runner, settings))["env"]}
    assert env["AMBIENT_TRACE_ID"] == "f00d"
    plain = {e["name"] for e in _container(_build(make_session(), runner, settings))["env"]}
    assert "AMBIENT_TRACE_ID" not in plain
