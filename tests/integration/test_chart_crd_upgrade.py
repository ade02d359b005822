"""The chart upgrades its CRDs and loses nothing, on the real local control plane.

A release of the previous chart (its CRDs in crds/, which Helm creates once and never
tracks) with SESSIONS Sessions run to Completed by the real operator, which keeps running
throughout; the one-time adoption the chart README documents; `helm upgrade` to this chart
(CRDs from templates/crds.yaml): every Session keeps its uid, resourceVersion, spec and
status, the CRDs carry the release's marks and keep policy, a field the previous CRD pruned
is stored right after, and `helm uninstall` leaves the CRDs and every Session in place.

The CRDs are cluster-scoped and shared by the whole test run: the test puts the previous
schema in place first (as the previous chart would have left it) and, whatever happens,
ends with exactly the repository's crds/*.yaml (schema, labels, annotations), never
deleting them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from .test_chart_install import CHART, ROOT, Release, helm_bin, release

__all__ = ["helm_bin", "release"]  # fixtures, used by name

pytestmark = pytest.mark.integration

SESSIONS = int(os.environ.get("AMBIENT_CRD_UPGRADE_SESSIONS", "1000"))
# The previous chart version: main before the chart rendered its CRDs from templates (the
# merge-base of this change with main; its chart ships them in crds/ and its Session CRD
# lacks spec.trigger.replyTo). Pinned so the test means the same after the merge.
PREVIOUS_CHART_REF = os.environ.get(
    "AMBIENT_PREVIOUS_CHART_REF", "c7ab2058946708b239a398a5c28ee9be5a8512ae"
)
CRDS = ("sessions.ambient.ai", "namespacepolicies.ambient.ai")


def _previous_chart(tmp: Path) -> Path:
    proc = subprocess.run(
        ["git", "archive", PREVIOUS_CHART_REF, "charts/ambient"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.skip(f"no git history with {PREVIOUS_CHART_REF} here: {proc.stderr.decode()}")
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as archive:
        archive.extractall(tmp / "previous", filter="data")
    chart = tmp / "previous" / "charts" / "ambient"
    assert (chart / "crds").is_dir(), "the previous chart should ship its CRDs in crds/"
    return chart


def _crd_files(folder: Path) -> dict[str, dict[str, Any]]:
    docs = (yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml")))
    return {d["metadata"]["name"]: d for d in docs}


def _put_crds(cluster: Any, wanted: dict[str, dict[str, Any]]) -> None:
    """Make each live CRD exactly `wanted` (spec, labels, annotations) by a PUT on its
    current resourceVersion: what the previous chart's `helm install` would have created,
    or the repository's CRDs again. Never a delete: the run's Sessions live under them."""
    for name, crd in wanted.items():
        live = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
        live["spec"] = crd["spec"]
        live["metadata"]["labels"] = crd["metadata"].get("labels", {})
        live["metadata"]["annotations"] = crd["metadata"].get("annotations", {})
        cluster.kubectl("replace", "-f", "-", stdin=json.dumps(live))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def _schema(crd: dict[str, Any]) -> Any:
    return [(v["name"], v["schema"]["openAPIV3Schema"]) for v in crd["spec"]["versions"]]


def _sessions(cluster: Any, namespace: str) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        try:
            items = cluster.custom.list_namespaced_custom_object(
                "ambient.ai", "v1alpha1", namespace, "sessions"
            )["items"]
            break
        except ApiException as exc:
            # Right after a CRD's schema changes the API server re-initializes its storage
            # and answers 429 "storage is (re)initializing" with Retry-After: wait, as a
            # client should.
            if exc.status != 429 or time.monotonic() > deadline:
                raise
            time.sleep(1)
    return {
        i["metadata"]["name"]: {
            "uid": i["metadata"]["uid"],
            "resourceVersion": i["metadata"]["resourceVersion"],
            "spec": i["spec"],
            "status": i.get("status"),
        }
        for i in items
    }


def _assert_adopted(cluster: Any, release: Release, new_crds: dict[str, dict[str, Any]]) -> None:
    """The release owns the CRDs now: in its manifest, with its marks, the new schema."""
    managed = {
        d["metadata"]["name"] for d in release.manifest() if d["kind"].endswith("Definition")
    }
    assert managed == set(CRDS)
    for name in CRDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
        live = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
        meta = live["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == release.name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["helm.sh/chart"].startswith("ambient-")
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
        assert _schema(live) == _schema(new_crds[name])


def _with_reply_to(name: str, make_session: Any) -> dict[str, Any]:
    body: dict[str, Any] = make_session(name)
    body["spec"]["trigger"]["replyTo"] = {"repository": "octo/widgets", "number": 7}
    return body


@pytest.mark.usefixtures("operator")  # the real operator runs throughout
def test_upgrade_from_the_previous_chart_adopts_the_crds_and_loses_no_session(
    cluster: Any,
    namespace: str,
    make_session: Any,
    release: Release,
    tmp_path: Path,
) -> None:
    previous = _previous_chart(tmp_path)
    old_crds = _crd_files(previous / "crds")
    new_crds = _crd_files(ROOT / "crds")

    def trigger(crds: dict[str, dict[str, Any]]) -> dict[str, Any]:
        schema = crds["sessions.ambient.ai"]["spec"]["versions"][0]["schema"]
        return schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["trigger"]  # type: ignore[no-any-return]

    # The field this upgrade brings: absent before, optional after.
    assert "replyTo" not in trigger(old_crds)["properties"]
    assert "replyTo" in trigger(new_crds)["properties"]
    assert "replyTo" not in trigger(new_crds).get("required", [])

    release.base_values.pop("crds")  # the previous chart's schema knows no `crds`
    try:
        _put_crds(cluster, old_crds)
        release.helm("install", release.name, str(previous), "-f", release.values_file("v1", {}))

        # The previous CRD refuses the new field (so the check after the upgrade could fail).
        refused = cluster.kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-",
            stdin=json.dumps(_with_reply_to("probe", make_session)), check=False,
        )  # fmt: skip
        assert 'unknown field "spec.trigger.replyTo"' in refused.stderr, refused

        started = time.monotonic()
        items = [make_session(f"s{i:04d}") for i in range(SESSIONS)]
        for i in range(0, SESSIONS, 200):  # a List per 200: one kubectl call stays well in time
            cluster.apply(
                {"apiVersion": "v1", "kind": "List", "items": items[i : i + 200]}, namespace
            )

        def settled() -> dict[str, dict[str, Any]] | None:
            before = _sessions(cluster, namespace)
            done = [s for s in before.values() if (s["status"] or {}).get("phase") == "Completed"]
            if len(done) < SESSIONS:
                return None
            time.sleep(3)  # nothing moves any more: the operator is done with them
            return before if _sessions(cluster, namespace) == before else None

        before = cluster.wait_for("every Session Completed", settled, timeout=1200, interval=5)
        print(f"\n{SESSIONS} Sessions Completed in {time.monotonic() - started:.0f}s")

        # The one-time adoption (charts/ambient/README.md "Install and upgrade").
        cluster.kubectl("label", "crd", *CRDS, "--overwrite", "app.kubernetes.io/managed-by=Helm")
        cluster.kubectl(
            "annotate", "crd", *CRDS, "--overwrite",
            f"meta.helm.sh/release-name={release.name}",
            f"meta.helm.sh/release-namespace={release.namespace}",
        )  # fmt: skip
        upgrade_started = time.monotonic()
        release.helm("upgrade", release.name, str(CHART), "-f", release.values_file("v2", {}))
        print(f"helm upgrade with the CRDs: {time.monotonic() - upgrade_started:.1f}s")

        _assert_adopted(cluster, release, new_crds)

        after = _sessions(cluster, namespace)
        assert len(after) == SESSIONS
        changed = [n for n in before if after.get(n) != before[n]]
        assert not changed, f"{len(changed)} Sessions changed, e.g. {changed[:3]}"

        # The new optional field is stored right after the upgrade.
        cluster.kubectl(
            "create", "-n", namespace, "-f", "-",
            stdin=json.dumps(_with_reply_to("with-reply-to", make_session)),
        )  # fmt: skip
        stored = cluster.session(namespace, "with-reply-to")
        assert stored["spec"]["trigger"]["replyTo"] == {"repository": "octo/widgets", "number": 7}

        # crds.keep: uninstall leaves the CRDs and every Session.
        release.helm("uninstall", release.name, "--wait")
        for name in CRDS:
            cluster.kubectl("get", "crd", name)
        assert {n: s["uid"] for n, s in _sessions(cluster, namespace).items() if n in before} == {
            n: s["uid"] for n, s in before.items()
        }
    finally:
        _put_crds(cluster, new_crds)


def test_crds_install_false_renders_no_crd(helm_bin: str) -> None:
    def kinds(*args: str) -> list[str]:
        out = subprocess.run(
            [helm_bin, "template", "ambient", str(CHART), "--kube-version", "1.35.4", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        return [d["kind"] for d in yaml.safe_load_all(out) if d]

    assert kinds().count("CustomResourceDefinition") == 2
    assert "CustomResourceDefinition" not in kinds("--set", "crds.install=false")
    # And never twice: nothing left in a crds/ folder for helm to install on its own.
    assert not (CHART / "crds").exists()
