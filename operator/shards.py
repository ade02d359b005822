"""One operator shard's side of the hand-off: read the shard map and the shards' Leases,
let ``sharding.decide`` (pure) say whether this shard may reconcile, and keep looking while
it does.

The shard's leader declares its share on its own Lease (``leader.Elector`` writes the
label and annotation with each renewal) before this gate reads the others, so two shards
serving different counts always see each other. Another shard's Lease counts as live while
its holder is set and its record changed within its term by this process's monotonic clock
(as ``lease.decide`` judges a holder): a shard killed without releasing its Lease keeps the
others waiting for at most the term, after which it has stopped itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ambient.common.kube.client import Kube
from ambient.common.kube.errors import KubeError
from ambient.operator import lease, sharding

log = logging.getLogger(__name__)


class Gate:
    """Shard ``index`` following the shard map ``map_name``; its Lease is ``my_lease``."""

    def __init__(
        self,
        api: Kube,
        namespace: str,
        map_name: str,
        *,
        index: int,
        my_lease: str,
        timing: lease.Timing,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api, self.namespace, self.map_name = api, namespace, map_name
        self.index, self.my_lease, self.timing = index, my_lease, timing
        self._monotonic, self._sleep = monotonic, sleep
        self._seen: dict[str, tuple[lease.Record | None, float]] = {}
        self._stop = threading.Event()

    @property
    def selector(self) -> str:
        """The label every shard Lease of this map carries."""
        return f"{sharding.LABEL_MAP}={self.map_name}"

    def mapped_count(self) -> int | None:
        """The count the shard map says now (None: no usable map)."""
        return sharding.map_count(self.api.get_configmap(self.namespace, self.map_name))

    def wait_for_map(self) -> int:
        """The map's count, waiting while there is none (nothing is served meanwhile)."""
        while True:
            try:
                count = self.mapped_count()
            except KubeError as exc:
                log.warning(
                    "shards: map %s/%s not readable: %s", self.namespace, self.map_name, exc
                )
                count = None
            if count is not None:
                return count
            log.warning("shards: no usable shard map %s/%s yet", self.namespace, self.map_name)
            self._sleep(self.timing.retry_seconds)

    def live(self) -> list[sharding.Claim]:
        """The shard Leases whose holders are alive as far as this process can tell."""
        now = self._monotonic()
        listed = self.api.list_leases(self.namespace, self.selector)
        claims = []
        seen: dict[str, tuple[lease.Record | None, float]] = {}
        for body in listed:
            claim = sharding.Claim.of(body)
            record = lease.Record.of(body)
            before = self._seen.get(claim.lease)
            since = before[1] if before is not None and before[0] == record else now
            seen[claim.lease] = (record, since)
            if claim.holder and now - since < self.timing.duration_seconds:
                claims.append(claim)
        self._seen = seen
        return claims

    def verdict(self, mine: sharding.Share) -> sharding.Verdict:
        """Read the map and the Leases once and decide."""
        mapped = self.mapped_count()
        claims = self.live()
        verdict = sharding.decide(mine, mapped, claims, self.my_lease)
        if verdict is sharding.Verdict.SERVE:
            missing = sharding.unserved(mine.count, [*claims, self._mine(mine)])
            if missing:
                log.warning("shards: no live operator for shard(s) %s of %d", missing, mine.count)
        return verdict

    def _mine(self, mine: sharding.Share) -> sharding.Claim:
        return sharding.Claim(self.my_lease, "me", mine)

    def wait_to_serve(self, mine: sharding.Share) -> sharding.Verdict:
        """Look until this shard may serve (SERVE) or must start again (RESTART)."""
        last = None
        while True:
            try:
                verdict = self.verdict(mine)
            except KubeError as exc:
                log.warning("shards: Leases or map not readable: %s", exc)
                verdict = sharding.Verdict.WAIT
            if verdict in (sharding.Verdict.SERVE, sharding.Verdict.RESTART):
                return verdict
            if verdict != last:
                log.info("shards: shard %s waits (%s)", mine.annotation(), verdict)
                last = verdict
            self._sleep(self.timing.retry_seconds)

    def watch(self, mine: sharding.Share, stop: Callable[[], None]) -> threading.Thread:
        """While serving, look every retry period; when the map's count changes, call
        ``stop`` (which stops reconciling; the caller then releases and starts again)."""

        def look() -> None:
            while not self._stop.wait(self.timing.retry_seconds):
                try:
                    mapped = self.mapped_count()
                except KubeError as exc:  # keep serving: the others wait for us meanwhile
                    log.warning("shards: map not readable: %s", exc)
                    continue
                if mapped != mine.count:
                    log.warning(
                        "shards: the map now says %s shards (serving %s): handing over",
                        mapped,
                        mine.annotation(),
                    )
                    stop()
                    return

        thread = threading.Thread(target=look, name="shard-map", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
