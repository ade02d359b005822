"""Operator configuration: every setting is also an environment variable (AMBIENT_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ambient.operator import sharding
from ambient.operator.notify import egress
from ambient.runners.registry import DEFAULT_REGISTRY_FILE

_SECRET_NAME = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$"  # noqa: S105 - a pattern
"""A Secret's name (a DNS subdomain), or empty."""
# Private (RFC 1918), shared (RFC 6598) and link-local ranges: other tenants' pods,
# internal services and the cloud metadata service.
INTERNAL_RANGES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,169.254.0.0/16"


class OperatorSettings(BaseSettings):
    """What a platform team can tune without a code change."""

    model_config = SettingsConfigDict(env_prefix="AMBIENT_", extra="ignore")

    registry_file: Path = DEFAULT_REGISTRY_FILE
    """The runner registry (the chart mounts it from a ConfigMap)."""
    image_registry: str = ""
    """Prefix for runner images that name no registry host."""
    namespaces: str = ""
    """Comma-separated namespaces to watch; empty means the whole cluster."""
    job_ttl_seconds: int = Field(default=86_400, ge=0)
    """ttlSecondsAfterFinished for runner Jobs; the Session keeps the record."""
    job_backoff_limit: int = Field(default=0, ge=0, le=10)
    """Pod retries inside one Job. Retries across attempts are the operator's business."""
    max_inline_context_bytes: int = Field(default=128 * 1024, ge=1024, le=200 * 1024)
    """Largest context passed through a pod annotation; larger ones go in a ConfigMap."""
    runner_user_id: int = Field(default=65532, ge=1)
    """UID the runner container runs as (non-root)."""
    workers: int = Field(default=48, ge=1, le=256)
    """Sessions reconciled at once; twice as many Kubernetes API calls may be in flight
    (threads and client connections). Starting a Session takes three round trips (its
    identity, then its binding, then its Job), so a burst starts about workers / (3 x API
    latency) Sessions a second."""
    default_max_concurrent_sessions: int = Field(default=50, ge=1, le=10_000)
    """Concurrency cap for namespaces without a NamespacePolicy."""
    resync_seconds: float = Field(default=5.0, gt=0, le=600)
    """How often one loop re-plans Sessions whose deadline passed or whose last reconcile
    failed, and wakes queued Sessions when slots are free."""
    log_format: str = Field(default="json", pattern="^(json|text)$")
    """json (one object a line, for log shippers) or text (for local work)."""
    leader_election: bool = False
    """Run as one of several replicas: reconcile only while holding a coordination.k8s.io
    Lease (the chart turns it on with operator.replicas > 1)."""
    leader_election_namespace: str = ""
    """Namespace of the Lease; the operator's own (POD_NAMESPACE or its ServiceAccount's)
    when empty."""
    leader_election_lease: str = "ambient-operator"
    """Name of the Lease (one per operator Deployment; shards each need their own)."""
    lease_duration_seconds: float = Field(default=10.0, gt=0, le=300)
    """A holder's term after the last renewal a waiting replica saw: the longest a dead
    leader keeps the others waiting (plus one lease_retry_seconds)."""
    lease_renew_deadline_seconds: float = Field(default=7.0, gt=0, le=300)
    """How long the leader tries to renew before it stops itself; below the duration, so
    it has stopped before anyone may take over."""
    lease_retry_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often the leader renews and a waiting replica looks."""
    shard_map: str = Field(default="", pattern=_SECRET_NAME)
    """Name of the shard map, a ConfigMap in the Lease's namespace whose ``count`` says
    how many operator shards split the namespaces (operator/sharding.py). Set, this
    operator reconciles only the namespaces its shard owns, holds its Lease
    (leader_election_lease, one per shard) even as a single replica, and hands its
    namespaces over when the count changes. Empty: one operator owns every namespace."""
    shard_index: int = Field(default=0, ge=0, lt=64)
    """This operator's shard, 0 to the map's count - 1 (with shard_map)."""
    retry_base_seconds: float = Field(default=5.0, gt=0, le=600)
    """Wait before a Session's first retry after a failed reconcile; it doubles with each
    further consecutive failure (with 20% jitter), up to retry_max_seconds."""
    retry_max_seconds: float = Field(default=300.0, gt=0, le=86_400)
    """Longest wait between retries of a Session whose reconciles keep failing."""
    artifacts_secret: str = "ambient-artifacts"  # noqa: S105 - a Secret name
    """Secret in each Session's namespace with the artifact store's credentials (e.g.
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); passed to runners as env, optional."""
    model_credentials_default_secret: str = Field(default="", pattern=_SECRET_NAME)
    """Cluster default for runners' model credentials: a Secret of this name in the
    Session's namespace (placed there by the cluster admin, e.g. replicated), with the
    keys of ambient-model-credentials; the namespace's ambient-model-credentials wins key
    by key. Empty: no default."""
    s3_endpoint_url: str = ""
    """S3-compatible endpoint for runners (AWS_ENDPOINT_URL_S3); empty means AWS."""
    s3_bucket: str = ""
    """Default artifact bucket when a Session names none (AMBIENT_S3_BUCKET for runners)."""
    s3_prefix: str = ""
    """Default key prefix in that bucket."""
    identity: str = "ambient-operator"
    """Actor name in audit records and the Kubernetes field manager."""
    retention_interval_seconds: int = Field(default=3600, ge=0)
    """How often retention runs over the NamespacePolicies; 0 turns it off."""
    retention_dry_run: bool = False
    """Report what retention would delete (audit log) without deleting anything."""
    audit_flush_seconds: float = Field(default=30.0, gt=0)
    """Longest an audit record waits before it is exported to the store."""
    notify_ca_file: Path | None = None
    """Extra CA bundle trusted for notification endpoints (private CAs), besides the system's."""
    notify_egress_allow: str = ""
    """Comma-separated CIDRs, addresses and host names that notification endpoints may
    reach although the egress rule refuses them (loopback, private, link-local, cluster
    ranges), e.g. an in-cluster receiver's Service name. Name such receivers by host
    name in policies: admission refuses URLs whose host is an internal address literal."""
    notify_cluster_cidrs: str = ""
    """Comma-separated service and pod CIDRs of the cluster, refused as notification
    endpoints like private ranges (set them when they are not RFC 1918 ranges)."""
    require_namespace_policy: bool = False
    """Start runners only in namespaces that have a NamespacePolicy: a Session elsewhere
    ends Failed (PolicyViolation, NoPolicy) without a Job. The chart turns it on
    (operator.requireNamespacePolicy), so a cluster-wide Job grant is used only where a
    policy governs; off here for local runs in throwaway namespaces."""
    runner_network_policy: bool = True
    """Give each runner pod a default-deny NetworkPolicy (owned by its Session) that lets
    out only DNS, the API server and the egress below. Enforced only where the cluster's
    network plugin enforces NetworkPolicy."""
    runner_apiserver_cidrs: str = "0.0.0.0/0"
    """Comma-separated CIDRs of the API server, as runner pods reach it (after the
    Service's translation: the control plane's addresses). Narrow it in production."""
    runner_apiserver_ports: str = "443,6443"
    """Comma-separated ports of the API server for runner egress."""
    runner_egress_cidrs: str = "0.0.0.0/0"
    """Comma-separated CIDRs runner pods may reach on ``runner_egress_ports`` (the model
    API, git hosts, the artifact store)."""
    runner_egress_except: str = INTERNAL_RANGES
    """Comma-separated CIDRs cut out of ``runner_egress_cidrs``: private, shared and
    link-local (the cloud metadata service) ranges, so agent code reaches no other
    tenant's pod, no internal service and no node credentials through that rule."""
    runner_egress_ports: str = "443"
    """Comma-separated TCP ports for ``runner_egress_cidrs``."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Port of the Prometheus /metrics endpoint; 0 turns it off."""
    history_archive_at_entries: int = Field(default=300, ge=10, le=999)
    """When status.history holds this many entries, the oldest are archived to the store
    (AMBIENT_STORE_*); below the cap of 1,000 so writers keep room meanwhile. Every status
    write runs the CRD's append-only rules over the whole window, about 77 us of the API
    server's CPU per entry (tests/bench/bench_crd_rules.py): a window of 100 to 300
    entries costs a long Session's writes a third of one of 400 to 900."""
    history_archive_batch: int = Field(default=200, ge=1, le=999)
    """How many of the oldest entries one archive moves."""
    history_archive_at_bytes: int = Field(default=384 * 1024, ge=16 * 1024, le=512 * 1024)
    """Archive also when the history's JSON reaches this size (keeps the object well
    under etcd's 1.5 MiB)."""

    # Tuning: the defaults are what the benchmarks were measured with.
    progress_interval_seconds: float = Field(default=1.0, ge=0, le=60)
    """A Session's status is written for its Job's progress at most this often: the states
    a quick Job passes through meanwhile (created, running) are recorded with the next one,
    which in a burst saves about one status write per Session. Changes to the Session
    itself are not delayed."""
    pod_recheck_seconds: float = Field(default=30.0, ge=0, le=3600)
    """A runner pod read while it was Pending is read again after this long, and again
    while it stays Pending, each wait twice the last: a pod that cannot pull its image
    says so only in its own status, and the Job's counters, which decide every other
    read, do not move. 0 never reads it again until the Job moves."""
    pod_recheck_max_seconds: float = Field(default=300.0, ge=0, le=3600)
    """The longest wait between two reads of a pod that stays Pending."""
    settle_seconds: float = Field(default=10.0, ge=0, le=60)
    """A status that says only that the work goes on (the operator created the Session's
    Job, or its pod runs) waits up to this long for the next news, once per such news:
    the Job's creation goes with its pod's start, and a pod's start with the outcome of
    a short run, one status write fewer each. An outcome or a stuck pod is written at
    once. 0 writes each on its own."""
    settle_max_seconds: float = Field(default=30.0, ge=0, le=300)
    """In a burst the settle time grows with the Sessions waiting at once, by
    ``settle_seconds`` for every ``settle_busy_sessions`` of them, up to this long: their
    pods start and finish late then, and each status write they share spares an API
    server that is the bottleneck. Outcomes are still written at once."""
    settle_busy_sessions: int = Field(default=100, ge=1, le=1_000_000)
    """How many Sessions waiting at once lengthen the settle time by ``settle_seconds``."""
    usage_interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """How often the month-to-date spend of every NamespacePolicy is rolled up from its
    Sessions (a policy's own changes roll it up at once)."""
    kick_delay_seconds: float = Field(default=0.05, ge=0, le=10)
    """How long a freed slot waits before the namespace's queue is looked at, so that the
    events of a burst (many Jobs finishing at once) share one look."""
    inflight_seconds: float = Field(default=120.0, gt=0, le=3600)
    """How long a Job this operator created counts against its namespace's cap before the
    Job watch shows it; past this, the create is assumed lost."""
    reconcile_attempts: int = Field(default=8, ge=1, le=100)
    """Plans one reconcile may make when its status write conflicts (the Session is read
    again before each); past this it gives up until the next event or resync."""
    indexed_payload_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    """Trigger payloads up to this size stay in the operator's Session index, so starting
    the Session needs no read; larger ones are read when the Job is created."""
    event_posting_workers: int = Field(default=4, ge=1, le=64)
    """Kubernetes Events posted at once (each takes a connection to the API server)."""
    watch_server_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    """How long the API server keeps one watch request open before the operator renews it."""
    watch_client_timeout_seconds: int = Field(default=330, ge=10, le=3600)
    """Client-side limit on one watch request (above the server's, so the server ends it)."""
    request_timeout_seconds: int = Field(default=30, ge=1, le=600)
    """Limit on one of kopf's own API requests (events, patches)."""
    notify_secret_ttl_seconds: float = Field(default=60.0, ge=0, le=3600)
    """How long a NamespacePolicy's notification signing secret is cached: a rotated secret
    is used for new notifications within this time."""
    github_api_url: str = Field(default="https://api.github.com", pattern=r"^https?://")
    """GitHub's REST API base URL for replies (GitHub Enterprise: https://HOST/api/v3)."""
    slack_api_url: str = Field(default="https://slack.com/api", pattern=r"^https?://")
    """Slack's Web API base URL for replies."""
    reply_max_attempts: int = Field(default=5, ge=1, le=20)
    """Most attempts per reply, across restarts (each is recorded in the Session's history)."""
    reply_backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    """Wait before the second attempt of a reply; doubled each time up to a minute, unless
    the API's Retry-After asks for another wait."""

    @field_validator("notify_egress_allow")
    @classmethod
    def _allow_list_parses(cls, value: str) -> str:
        egress.parse_rule(allow=value)  # a bad entry stops the operator at start
        return value

    @field_validator("notify_cluster_cidrs")
    @classmethod
    def _cluster_cidrs_parse(cls, value: str) -> str:
        egress.parse_rule(cluster_cidrs=value)
        return value

    @property
    def notify_egress_rule(self) -> egress.EgressRule:
        """The notification egress rule these settings describe."""
        return egress.parse_rule(self.notify_cluster_cidrs, self.notify_egress_allow)

    @property
    def namespace_list(self) -> list[str]:
        """The namespaces to watch, parsed."""
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]

    _share: sharding.Share | None = PrivateAttr(default=None)

    def serve_share(self, count: int) -> None:
        """From now on own only what shard ``shard_index`` of ``count`` owns (the entry
        point sets it once the hand-off let this shard serve)."""
        self._share = sharding.Share(self.shard_index, count)

    def owns(self, namespace: str) -> bool:
        """Whether this operator reconciles ``namespace``: all of them unless sharded."""
        return self._share is None or self._share.owns(namespace)
