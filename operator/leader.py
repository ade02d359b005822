"""Leader election for several operator replicas: take the Lease before reconciling,
renew it while running, stop the process at once when it cannot be renewed.

The decisions are ``lease.decide`` (pure); this module reads and writes the Lease through
``common.kube`` and keeps time. A waiting replica answers its liveness probe from a small
HTTP server, so the kubelet does not restart a healthy standby.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from ambient.common.kube.client import ConflictError, Kube
from ambient.common.kube.errors import KubeError
from ambient.operator import lease

log = logging.getLogger(__name__)

_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace() -> str:
    """Where the Lease lives when no namespace is set: the operator's own (the chart's
    release namespace, from the Downward API or the ServiceAccount), else ``default``."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return _POD_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def identity() -> str:
    """This replica's name in the Lease: the pod's name and a random suffix, so a
    restarted container is a new candidate, never mistaken for the old holder."""
    return f"{os.environ.get('HOSTNAME') or 'operator'}-{uuid.uuid4().hex[:8]}"


class Elector:
    """One candidate for one Lease."""

    def __init__(
        self,
        api: Kube,
        namespace: str,
        name: str,
        me: str,
        timing: lease.Timing,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api, self.namespace, self.name, self.me = api, namespace, name, me
        self.timing = timing
        self._monotonic, self._now, self._sleep = monotonic, now, sleep
        self._observed: lease.Record | None = None
        self._observed_at = monotonic()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.labels: dict[str, str] = {}
        """Written on the Lease with each acquisition and renewal (a shard's map)."""
        self.annotations: dict[str, str] = {}
        """Likewise (a shard's declared share, ``sharding.ANNOTATION_SHARD``)."""

    def try_once(self) -> bool:
        """Read the Lease and act on it; True when this candidate holds it afterwards."""
        body = self.api.get_lease(self.namespace, self.name)
        record = lease.Record.of(body)
        now = self._monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        action = lease.decide(
            record, self.me, observed_at=self._observed_at, now=now, timing=self.timing
        )
        if action is lease.Action.WAIT:
            return False
        version = None if body is None else str(body["metadata"]["resourceVersion"])
        spec = lease.spec(self.me, record, self._now(), self.timing)
        try:
            written = self.api.write_lease(
                self.namespace,
                self.name,
                spec,
                version,
                labels=self.labels,
                annotations=self.annotations,
            )
        except ConflictError:  # another candidate wrote first
            return False
        self._observed, self._observed_at = lease.Record.of(written), self._monotonic()
        if action is lease.Action.ACQUIRE:
            log.info(
                "leader election: %s now holds Lease %s/%s (previous holder %r)",
                self.me,
                self.namespace,
                self.name,
                record.holder if record else "",
            )
        return True

    def acquire(self) -> None:
        """Wait until this candidate holds the Lease."""
        last_holder = None
        while True:
            try:
                if self.try_once():
                    return
            except KubeError as exc:
                log.warning("leader election: Lease not readable or writable: %s", exc)
            holder = self._observed.holder if self._observed else None
            if holder != last_holder:
                log.info("leader election: waiting; Lease held by %r", holder)
                last_holder = holder
            self._sleep(self.timing.retry_seconds)

    def keep(self, lost: Callable[[], None]) -> threading.Thread:
        """Renew every retry period in a daemon thread; call ``lost`` (which must stop the
        process) once renewals have failed for the renew deadline or another holder shows."""

        def renew() -> None:
            last_renewed = self._monotonic()
            while not self._stop.wait(self.timing.retry_seconds):
                try:
                    if self.try_once():
                        last_renewed = self._monotonic()
                        continue
                    log.critical("leader election: the Lease was taken by %r", self._holder())
                    lost()
                    return
                except Exception as exc:  # renewed next round, until the deadline
                    log.warning("leader election: renewal failed: %s", exc)
                if self._monotonic() - last_renewed >= self.timing.renew_deadline_seconds:
                    log.critical(
                        "leader election: not renewed for %.0fs; stopping",
                        self.timing.renew_deadline_seconds,
                    )
                    lost()
                    return

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        self._renewer = thread
        return thread

    def _holder(self) -> str:
        return self._observed.holder if self._observed else ""

    def release(self) -> None:
        """On a clean stop: give the Lease up so a waiting replica takes over at its next
        look instead of after the full lease duration."""
        self._stop.set()
        # A renewal in flight would make the release's write conflict: let it land first.
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=self.timing.renew_deadline_seconds)
        for attempt in range(3):
            try:
                body = self.api.get_lease(self.namespace, self.name)
                record = lease.Record.of(body)
                if body is None or record is None or record.holder != self.me:
                    return
                spec = lease.spec(self.me, record, self._now(), self.timing, release=True)
                self.api.write_lease(
                    self.namespace,
                    self.name,
                    spec,
                    str(body["metadata"]["resourceVersion"]),
                    labels=self.labels,
                )
                log.info("leader election: Lease %s/%s released", self.namespace, self.name)
                return
            except ConflictError:  # written meanwhile (still ours?): read it again
                if attempt == 2:
                    log.warning("leader election: Lease not released: it kept changing")
            except Exception as exc:  # it expires on its own
                log.warning("leader election: Lease not released: %s", exc)
                return


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"standby\n")

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds are not news


class StandbyProbe:
    """Answers the liveness probe's URL while the replica waits for the Lease (kopf's own
    endpoint starts only when it runs)."""

    def __init__(self, url: str | None) -> None:
        self._server: ThreadingHTTPServer | None = None
        if not url:
            return
        parts = urlsplit(url)
        # The probe's own address (the chart's --liveness binds every interface).
        address = (parts.hostname or "localhost", parts.port or 80)
        self._server = ThreadingHTTPServer(address, _Healthy)
        threading.Thread(
            target=self._server.serve_forever, name="standby-probe", daemon=True
        ).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
