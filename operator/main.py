"""Entry point: ``ambient-operator`` (or ``python -m ambient.operator``) runs the operator."""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import sys
import threading
from typing import NoReturn

from ambient.common import logs
from ambient.common.audit import trail as audit
from ambient.common.kube.client import Kube
from ambient.operator import leader, lease, sharding, shards
from ambient.operator.settings import OperatorSettings
from ambient.runners import registry as runner_registry


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena; with a pool of API
    client threads that multiplies resident memory for no speed gain here."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    m_arena_max = -8
    libc.mallopt(m_arena_max, arenas)


def main(argv: list[str] | None = None) -> int:
    """Run the kopf operator until interrupted."""
    parser = argparse.ArgumentParser(description="Reconcile ambient.ai Sessions into Jobs.")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness endpoint"
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="json lines (default, AMBIENT_LOG_FORMAT) or text for local work",
    )
    args = parser.parse_args(argv)
    # kopf imports the official Kubernetes client whenever it is installed (an optional
    # login and its type hooks): about 40 MiB held for the process's life. The operator
    # logs kopf in itself (adapter.login), so that import is refused, before kopf's.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    import kopf  # noqa: PLC0415

    from ambient.operator import adapter  # noqa: PLC0415

    _limit_malloc_arenas()
    settings = OperatorSettings()
    logs.configure(
        "operator",
        args.log_format or settings.log_format,
        logging.DEBUG if args.verbose else logging.INFO,
    )
    if not args.verbose:
        # kopf logs every handler run at INFO; with thousands of Sessions that is noise.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    audit.configure()
    # Read here, not at import: a broken registry stops the operator before it watches.
    registry = runner_registry.load(settings.registry_file)
    assert registry.frameworks
    # Set by the shard gate when the shard map's count changes: kopf stops, then restart.
    handing_over = threading.Event()
    sharded = bool(settings.shard_map)
    elector = (
        _lead(settings, args.liveness, handing_over)
        if settings.leader_election or sharded
        else None
    )
    adapter.install(settings, registry)  # importing the adapter registered its handlers
    # Everything imported so far (kopf, pydantic's schemas, the official client's model
    # classes) lives as long as the process: out of the collector's sight, a full
    # collection during a burst of Sessions walks only what the Sessions allocate.
    gc.freeze()
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespace_list,
        namespaces=settings.namespace_list,
        liveness_endpoint=args.liveness or None,
        stop_flag=handing_over if sharded else None,
    )
    if elector is not None:
        elector.release()
    if handing_over.is_set():
        _start_again()
    return 0


def _lead(
    settings: OperatorSettings, liveness: str | None, handing_over: threading.Event
) -> leader.Elector:
    """Block until this replica holds the Lease, then keep it renewed; a replica that
    loses it exits at once (its pod restarts as a waiting candidate), so two never act.
    A shard (``shard_map``) declares its share on the Lease and then waits, holding it,
    until no other live shard serves another count (``shards.Gate``)."""
    timing = lease.Timing(
        settings.lease_duration_seconds,
        settings.lease_renew_deadline_seconds,
        settings.lease_retry_seconds,
    )
    elector = leader.Elector(
        Kube(connections=2),
        settings.leader_election_namespace or leader.default_namespace(),
        settings.leader_election_lease,
        leader.identity(),
        timing,
    )
    probe = leader.StandbyProbe(liveness)
    try:
        gate = _declare_share(settings, elector, timing) if settings.shard_map else None
        elector.acquire()
        elector.keep(lost=lambda: os._exit(1))
        if gate is not None:
            share = sharding.Share.parse(elector.annotations[sharding.ANNOTATION_SHARD])
            assert share is not None
            if gate.wait_to_serve(share) is sharding.Verdict.RESTART:
                elector.release()
                _start_again()
            settings.serve_share(share.count)
            gate.watch(share, handing_over.set)
            logging.getLogger(__name__).info("shards: serving shard %s", share.annotation())
    finally:
        probe.close()
    return elector


def _declare_share(
    settings: OperatorSettings, elector: leader.Elector, timing: lease.Timing
) -> shards.Gate:
    """Read the shard map's count and have the elector write this shard's share on its
    Lease with every acquisition and renewal."""
    gate = shards.Gate(
        Kube(connections=2),
        elector.namespace,
        settings.shard_map,
        index=settings.shard_index,
        my_lease=elector.name,
        timing=timing,
    )
    share = sharding.Share(settings.shard_index, gate.wait_for_map())
    elector.labels = {sharding.LABEL_MAP: settings.shard_map}
    elector.annotations = {sharding.ANNOTATION_SHARD: share.annotation()}
    return gate


def _start_again() -> NoReturn:
    """The shard count changed: run this process again from the start (same pid, no
    container restart and its back-off), to read the new count and wait its turn."""
    logging.getLogger(__name__).warning("shards: starting again for the new shard count")
    logging.shutdown()
    sys.stdout.flush()
    os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - this program, its own argv


if __name__ == "__main__":
    sys.exit(main())
