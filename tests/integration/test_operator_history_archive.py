"""History past the cap on the real API server and a real S3 server (moto's): the operator
archives the oldest entries to the store, the trail stays whole, and the CRD's CEL rules
alone (no admission webhook is registered here) allow exactly an archive step."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ambient.common.audit.cli import run as audit_cli
from ambient.common.store.s3 import S3Store
from ambient.crds.history import CarriedEntry, encode_carried
from ambient.crds.models import Session
from ambient.operator.history.rules import ArchivePolicy, plan_archive

pytestmark = pytest.mark.integration

GROUP, VERSION = "ambient.ai", "v1alpha1"
SHA = "c" * 64


def _entry(seq: int, event: str = "Progress", **data: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": f"runner:test/step-{seq}",
        "timestamp": "2026-03-01T00:00:00Z",
        "event": event,
        "data": data,
    }


def _archive(from_seq: int, to_seq: int, location: str = "s3://b/k.json") -> dict[str, Any]:
    return {
        "fromSeq": from_seq,
        "toSeq": to_seq,
        "count": to_seq - from_seq + 1,
        "location": location,
        "sha256": SHA,
        "archivedAt": "2026-03-01T00:00:00Z",
    }


def _marker(seq: int, location: str = "s3://b/k.json", carried: str = "") -> dict[str, Any]:
    data = {"location": location, **({"carried": carried} if carried else {})}
    return {**_entry(seq, "HistoryArchived", **data), "id": f"history-archived/{seq}"}


def _put_status(cluster: Any, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """A whole-status update guarded by resourceVersion, as the operator and runners write
    (the fields given replace the current ones; the rest, such as the phase, stay)."""
    body = cluster.session(namespace, name)
    body["status"] = {**body.get("status", {}), **status}
    result: dict[str, Any] = cluster.custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "sessions", name, body
    )
    return result


def _refused(cluster: Any, namespace: str, name: str, status: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as err:
        _put_status(cluster, namespace, name, status)
    assert err.value.status == 422, err.value.body
    return str(err.value.body)


def test_cel_alone_allows_exactly_an_archive_step(
    cluster: Any, namespace: str, make_session: Any, operator: Any
) -> None:
    # The admission webhook only judges namespaces labelled for it, so every answer below
    # is the CRD's. An unknown framework makes the operator (which has no store here)
    # write its entries once and then leave the Session alone, so nothing races the writes.
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", make_session("cel-archive", framework="nope")
    )
    cluster.wait_phase(namespace, "cel-archive", "Failed")
    body = cluster.session(namespace, "cel-archive")
    status, uid = body["status"], body["metadata"]["uid"]
    own = status["history"]
    # The Session's own archive key (keys.history_archive_key); CEL checks its shape.
    first = _archive(0, 499, f"s3://bkt/{namespace}/cel-archive/{uid}/history/0-499.json")
    full = [*own, *(_entry(i) for i in range(len(own), 1000))]
    _put_status(cluster, namespace, "cel-archive", {"history": full})

    assert "Too many" in _refused(
        cluster, namespace, "cel-archive", {"history": [*full, _entry(1000)]}
    )
    assert "unless an archive" in _refused(
        cluster, namespace, "cel-archive", {"history": full[500:]}
    )
    assert (
        "unless an archive"
        in _refused(  # the archive does not cover what was dropped
            cluster,
            namespace,
            "cel-archive",
            {"history": [*full[600:], _marker(1000)], "historyArchives": [_archive(0, 499)]},
        )
    )
    assert (
        "grows by one record per write"
        in _refused(  # it does not start at 0
            cluster,
            namespace,
            "cel-archive",
            {"history": [*full[500:], _marker(1000)], "historyArchives": [_archive(1, 499)]},
        )
    )
    assert "grows by one record per write" in _refused(  # it covers entries never written
        cluster,
        namespace,
        "cel-archive",
        {"history": [_entry(1200)], "historyArchives": [_archive(0, 1199)]},
    )
    rewritten = [{**full[500], "event": "Rewritten"}, *full[501:], _marker(1000)]
    assert "cannot be changed" in _refused(
        cluster,
        namespace,
        "cel-archive",
        {"history": rewritten, "historyArchives": [_archive(0, 499)]},
    )

    # As the operator does, the marker carries the operator's archived entries, so the
    # (running) operator still sees them and writes none of them again.
    carried = encode_carried([CarriedEntry(e["id"], e["event"], e["timestamp"]) for e in own])
    window = [*full[500:], _marker(1000, carried=carried)]
    for elsewhere in (
        "s3://bkt/k.json",  # not an archive key
        f"s3://bkt/{namespace}/other/{uid}/history/0-499.json",  # another Session's
        f"s3://bkt/{namespace}/cel-archive/{uid}/history/0-899.json",  # another range
        f"s3://bkt/{namespace}/cel-archive/{uid}/history/../../x/history/0-499.json",
        f"pvc://bkt/{namespace}/cel-archive/{uid}/history/0-499.json",
    ):
        assert "the Session's own archive key" in _refused(
            cluster,
            namespace,
            "cel-archive",
            {"history": window, "historyArchives": [{**first, "location": elsewhere}]},
        ), elsewhere
    assert "should match" in _refused(
        cluster,
        namespace,
        "cel-archive",
        {"history": window, "historyArchives": [{**first, "sha256": "C" * 64}]},
    )
    archived = {"history": window, "historyArchives": [first]}
    stored = _put_status(cluster, namespace, "cel-archive", archived)
    assert stored["status"]["history"][0]["seq"] == 500
    assert stored["status"]["historyArchives"] == [first]

    forged = {**archived, "historyArchives": [_archive(0, 499, "s3://b/forged.json")]}
    assert "record cannot be changed" in _refused(cluster, namespace, "cel-archive", forged)
    assert "records cannot be removed" in _refused(
        cluster, namespace, "cel-archive", {"history": window, "historyArchives": []}
    )
    two = {
        "history": [*window[300:], _marker(1001)],
        "historyArchives": [first, _archive(500, 699), _archive(700, 799)],
    }
    assert "grows by one record per write" in _refused(cluster, namespace, "cel-archive", two)
    # Appending after the archive continues at the next global seq.
    _put_status(cluster, namespace, "cel-archive", {**archived, "history": [*window, _entry(1001)]})
    assert "consecutive seq" in _refused(
        cluster,
        namespace,
        "cel-archive",
        {**archived, "history": [*window, _entry(1001), _entry(1005)]},
    )


def _patch_refused(cluster: Any, namespace: str, name: str, ops: list[Any]) -> str:
    """A JSON patch of the status subresource with kubectl, as an attacker would send it;
    it must be refused (the stderr is returned)."""
    done = cluster.kubectl(
        "patch", "session", name, "-n", namespace, "--subresource=status",
        "--type=json", "-p", json.dumps(ops), check=False,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    return str(done.stderr)


def test_cel_alone_refuses_dropping_status_and_a_fabricated_history(
    cluster: Any, namespace: str, make_session: Any, operator: Any
) -> None:
    """Removing /status left no oldSelf for the status-level rules, after which any
    history was accepted: a rule on the whole Session refuses the removal."""
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", make_session("kept", framework="nope")
    )
    real = cluster.wait_phase(namespace, "kept", "Failed")["status"]
    history = real["history"]
    assert history

    for ops in (
        [{"op": "remove", "path": "/status"}],
        [{"op": "replace", "path": "/status", "value": {"phase": "Completed"}}],
        [{"op": "remove", "path": "/status/history"}],
        [{"op": "replace", "path": "/status/history", "value": []}],
    ):
        assert "cannot be removed" in _patch_refused(cluster, namespace, "kept", ops), ops
    assert cluster.session(namespace, "kept")["status"]["history"] == history

    # A fabricated history in place of the real one: refused entry by entry.
    fabricated = [
        {**_entry(i, "Approved", actor="mallory"), "id": f"fake/{i}"} for i in range(len(history))
    ]
    assert "cannot be changed" in _refused(cluster, namespace, "kept", {"history": fabricated})

    # After an archive step, dropping the archives to re-fabricate seq 0.. is refused too.
    uid = cluster.session(namespace, "kept")["metadata"]["uid"]
    full = [*history, *(_entry(i) for i in range(len(history), 600))]
    _put_status(cluster, namespace, "kept", {"history": full})
    record = _archive(0, 299, f"s3://bkt/{namespace}/kept/{uid}/history/0-299.json")
    carried = encode_carried([CarriedEntry(e["id"], e["event"], e["timestamp"]) for e in history])
    window = [*full[300:], _marker(600, carried=carried)]  # as the operator's (see above)
    _put_status(cluster, namespace, "kept", {"history": window, "historyArchives": [record]})
    refill = [*(_entry(i, "Forged") for i in range(300)), *window]
    assert "records cannot be removed" in _refused(
        cluster, namespace, "kept", {"history": refill, "historyArchives": []}
    )
    assert "cannot be removed" in _patch_refused(
        cluster, namespace, "kept", [{"op": "remove", "path": "/status/historyArchives"}]
    )
    assert "cannot be removed" in _patch_refused(
        cluster, namespace, "kept", [{"op": "remove", "path": "/status"}]
    )
    kept = cluster.session(namespace, "kept")["status"]
    assert kept["historyArchives"] == [record] and kept["history"] == window

    # History values are bounded: 4096 characters, the operator's carried list aside.
    at = window[-1]["seq"] + 1
    assert "at most 4096" in _refused(
        cluster, namespace, "kept", {"history": [*window, _entry(at, note="n" * 4097)]}
    )
    assert "at most 4096" in _refused(  # carried is the operator's, on its own entry only
        cluster,
        namespace,
        "kept",
        {"history": [*window, _entry(at, carried="c" * 4097)]},
    )
    _put_status(cluster, namespace, "kept", {"history": [*window, _entry(at, note="n" * 4096)]})


@pytest.fixture
def archiving_operator(operator: Any, s3_store: S3Store, s3_endpoint: str) -> Iterator[Any]:
    """The run's operator restarted with a store, restored afterwards."""
    operator.stop()
    operator.start(
        {
            "AMBIENT_STORE_BUCKET": s3_store.bucket,
            "AMBIENT_STORE_PREFIX": "archive",
            "AMBIENT_STORE_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }
    )
    try:
        yield operator
    finally:
        operator.stop()
        operator.start()


def _append(cluster: Any, namespace: str, name: str, entries: int, tag: str) -> None:
    """Append as a runner does: read, add at the next seq, write with the resourceVersion;
    on a conflict or a full window, read again and retry (the entries are never lost)."""
    for _ in range(600):
        body = cluster.session(namespace, name)
        status = body["status"]
        history = status.get("history") or []
        if len(history) + entries > 1000:
            time.sleep(0.2)  # the operator archives at 300
            continue
        start = history[-1]["seq"] + 1
        status["history"] = history + [
            {**_entry(start + i, tag=tag), "id": f"runner:{tag}/{start + i}"}
            for i in range(entries)
        ]
        try:
            cluster.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "sessions", name, body
            )
            return
        except ApiException as exc:
            if exc.status not in (409, 422):
                raise
    raise AssertionError("the history window never made room")


@pytest.mark.usefixtures("archiving_operator")
def test_history_past_the_cap_is_archived_to_the_store_and_nothing_is_lost(
    cluster: Any,
    namespace: str,
    make_session: Any,
    s3_store: S3Store,
    tmp_path: Path,
) -> None:
    # An unknown framework: the operator writes its entries, ends the Session Failed and
    # then only archives; the appends below stand in for a chatty runner.
    cluster.apply(make_session("chatty", framework="no-such-runner"), namespace)
    uid = cluster.wait_phase(namespace, "chatty", "Failed")["metadata"]["uid"]
    operator_entries = [e["id"] for e in cluster.session(namespace, "chatty")["status"]["history"]]

    for batch in range(24):
        _append(cluster, namespace, "chatty", 100, f"b{batch}")

    def settled() -> dict[str, Any] | None:
        body = cluster.session(namespace, "chatty")
        return body if len(body["status"]["history"]) < 300 else None

    body = cluster.wait_for("the operator to archive", settled, 60)
    status = body["status"]
    archives = status["historyArchives"]
    assert len(archives) >= 3
    assert [a["fromSeq"] for a in archives] == [0, *[a["toSeq"] + 1 for a in archives[:-1]]]
    assert status["history"][0]["seq"] == archives[-1]["toSeq"] + 1

    trail: list[dict[str, Any]] = []
    for record in archives:
        key = record["location"].removeprefix(f"s3://{s3_store.bucket}/")
        span = f"{record['fromSeq']}-{record['toSeq']}"
        assert key == f"archive/{namespace}/chatty/{uid}/history/{span}.json"
        blob = s3_store.get(key)
        assert hashlib.sha256(blob).hexdigest() == record["sha256"]
        doc = json.loads(blob)
        assert [e["seq"] for e in doc["entries"]] == list(
            range(record["fromSeq"], record["toSeq"] + 1)
        )
        trail.extend(doc["entries"])
    trail.extend(status["history"])
    # The whole trail: every seq once, in order; every runner entry appended exactly once;
    # the operator's own entries once (archival did not make it write them again).
    assert [e["seq"] for e in trail] == list(range(len(trail)))
    ids = [e["id"] for e in trail]
    assert len(ids) == len(set(ids))
    for batch in range(24):
        assert sum(1 for i in ids if i.startswith(f"runner:b{batch}/")) == 100
    assert all(ids.count(i) == 1 for i in operator_entries)
    markers = [e for e in trail if e["event"] == "HistoryArchived"]
    assert [m["data"]["location"] for m in markers] == [a["location"] for a in archives]

    # kubectl get -o wide: LastSeq counts the whole trail, not the window.
    wide = cluster.kubectl(
        "get", "session", "chatty", "-n", namespace, "-o",
        "custom-columns=LAST:.status.history[-1:].seq",
    ).stdout.split()  # fmt: skip
    assert wide[-1] == str(len(trail) - 1)
    columns = cluster.kubectl("get", "session", "chatty", "-n", namespace, "-o", "wide").stdout
    assert columns.split("\n")[0].split().count("LASTSEQ") == 1
    assert str(len(trail) - 1) in columns.split("\n")[1].split()

    # The CEL rules still hold on the archived Session: no rewrite, no drop without archive.
    window = status["history"]
    assert "cannot be changed" in _refused(
        cluster,
        namespace,
        "chatty",
        {**status, "history": [{**window[0], "event": "X"}, *window[1:]]},
    )
    assert "unless an archive" in _refused(
        cluster, namespace, "chatty", {**status, "history": window[1:]}
    )

    # The audit CLI shows the full trail, archived entries included.
    dumped = tmp_path / "chatty.json"
    dumped.write_text(json.dumps(body))
    now = datetime.now(UTC)
    args = ["history", namespace, "chatty", "--session-json", str(dumped), "--json"]
    shown = [json.loads(line) for line in audit_cli(args, s3_store, "archive", now).splitlines()]
    assert shown == trail
    table = audit_cli(args[:-1], s3_store, "archive", now)
    assert len(table.splitlines()) == len(trail) + 1
    # Without the Session (deleted), the store alone still gives the archived entries.
    archived_only = audit_cli(["history", namespace, "chatty", "--json"], s3_store, "archive", now)
    assert len(archived_only.splitlines()) == sum(a["count"] for a in archives)


def _fill(cluster: Any, namespace: str, name: str, total: int) -> None:
    """Bring status.history to ``total`` entries in one write (no operator running)."""
    body = cluster.session(namespace, name)
    history = body["status"]["history"]
    start = history[-1]["seq"] + 1
    body["status"]["history"] = history + [_entry(i) for i in range(start, total)]
    cluster.custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "sessions", name, body
    )


def test_a_crash_between_the_two_writes_is_safe_and_a_conflict_is_not_overwritten(
    cluster: Any,
    namespace: str,
    make_session: Any,
    *,
    operator: Any,
    s3_store: S3Store,
    s3_endpoint: str,
) -> None:
    env = {
        "AMBIENT_STORE_BUCKET": s3_store.bucket,
        "AMBIENT_STORE_PREFIX": "archive",
        "AMBIENT_STORE_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    for name in ("crashed", "clashing"):
        cluster.apply(make_session(name, framework="no-such-runner"), namespace)
        cluster.wait_phase(namespace, name, "Failed")
    operator.stop()
    try:
        planned = {}
        for name in ("crashed", "clashing"):
            _fill(cluster, namespace, name, 950)
            session = Session.model_validate(cluster.session(namespace, name))
            step = plan_archive(session, ArchivePolicy(), "archive")
            assert step is not None
            planned[name] = step
        # "crashed": the operator wrote the object and died before the status write.
        assert s3_store.put_once(planned["crashed"].key, planned["crashed"].body)
        # "clashing": something else sits at the key.
        s3_store.put_new(planned["clashing"].key, b"not the archive")
        operator.start(env)

        def archived() -> dict[str, Any] | None:
            body = cluster.session(namespace, "crashed")
            return body if body["status"].get("historyArchives") else None

        status = cluster.wait_for("the archive after the restart", archived, 60)["status"]
        record = status["historyArchives"][0]
        assert record["location"] == f"s3://{s3_store.bucket}/{planned['crashed'].key}"
        assert record["sha256"] == planned["crashed"].sha256
        assert s3_store.get(planned["crashed"].key) == planned["crashed"].body
        # The window starts after the last archive: the crashed one, and any the operator
        # made next while the window still held more than it archives at.
        assert status["history"][0]["seq"] == status["historyArchives"][-1]["toSeq"] + 1
        assert status["history"][0]["seq"] > planned["crashed"].to_seq

        cluster.wait_for(
            "the operator to refuse the clashing archive",
            lambda: f"{namespace}/clashing: history not archived" in operator.logs(),
            60,
        )
        clashing = cluster.session(namespace, "clashing")["status"]
        assert not clashing.get("historyArchives")
        assert len(clashing["history"]) == 950  # nothing dropped
        assert s3_store.get(planned["clashing"].key) == b"not the archive"
    finally:
        operator.stop()
        operator.start()
