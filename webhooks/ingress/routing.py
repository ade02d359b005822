"""Routes: which Session a delivery starts, decided. Pure.

``spec.ingress.routes`` is an ordered list; the first route whose source, events and
filter match decides: the sender must be trusted (or the route widens it), then its task
and config templates are rendered into the Session's ``framework.config`` before the
Session exists, so the stored Session shows exactly the task (invariant 9). No route
matching means ignored. Without routes, one implicit route per source stands for
``spec.defaults`` and ``spec.ingress.<source>.events`` (and the rules of
``events.ignore_reason``), as before routes existed.

Nothing here answers 5xx: a filter that fails on a payload does not match, a template
that fails to render is a refusal; both are ignored deliveries whose reason the delivery
log keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ambient.crds.models import Framework, IngressPolicy, IngressRoute, SessionDefaults

from . import events, tasks
from .compiled import (
    CompileError,
    Filter,
    FilterError,
    Inputs,
    RenderError,
    Template,
    compile_built_in,
    compile_filter,
    compile_template,
)

TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
"""GitHub author_associations that may start Sessions without allowUntrustedSenders."""
HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
"""Headers filters and templates never see."""
# GitHub events anyone who can see a public repository can cause; the others (push,
# release, workflow_run, ...) need write access to the repository already.
_OPEN_EVENTS = frozenset(
    {
        "issues",
        "issue_comment",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "discussion",
        "discussion_comment",
    }
)


@dataclass(frozen=True)
class CompiledRoute:
    """A route with its filter and templates compiled (or the reason they do not)."""

    name: str
    route: IngressRoute
    filter: Filter | None = None
    task: Template | None = None
    config: tuple[tuple[str, Template], ...] = ()
    error: str | None = None
    """Why the route cannot be used; a delivery it would take is then refused."""


@dataclass(frozen=True)
class RouteTable:
    """A namespace's routes, compiled; empty means the implicit route."""

    routes: tuple[CompiledRoute, ...] = ()


EMPTY = RouteTable()


def compile_route(index: int, route: IngressRoute) -> CompiledRoute:
    """Compile one route; a problem is kept in ``error`` (``problems`` lists them all)."""
    name = route.name or f"routes[{index}]"
    try:
        flt = compile_filter(route.filter) if route.filter else None
        task = compile_template(route.task) if route.task else None
        config = tuple((k, compile_template(v)) for k, v in sorted(route.config.items()))
    except CompileError as exc:
        return CompiledRoute(name, route, error=str(exc))
    return CompiledRoute(name, route, flt, task, config)


def compile_routes(routes: Sequence[IngressRoute]) -> RouteTable:
    return RouteTable(tuple(compile_route(i, r) for i, r in enumerate(routes)))


def problems(routes: Sequence[IngressRoute]) -> list[str]:
    """Every filter and template that does not compile, by its field path (what the
    admission webhook refuses a NamespacePolicy for)."""
    found: list[str] = []
    for i, route in enumerate(routes):
        where = f"spec.ingress.routes[{i}]"
        texts = [("filter", route.filter), ("task", route.task)]
        texts += [(f"config.{k}", v) for k, v in sorted(route.config.items())]
        for label, text in texts:
            if text is None:
                continue
            try:
                (compile_filter if label == "filter" else compile_template)(text)
            except CompileError as exc:
                found.append(f"{where}.{label}: {exc}")
    return found


def event_matches(event: str, patterns: Sequence[str]) -> bool:
    """Today's event selection syntax: exact, '*', or 'prefix.*'."""
    for pattern in patterns:
        if pattern in ("*", event):
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def loop_reason(delivery: events.Delivery) -> str | None:
    """Bots' own messages start nothing on any route (a bot answering itself would loop)."""
    payload = delivery.payload
    if delivery.source == "github":
        sender = payload.get("sender")
        if isinstance(sender, dict) and sender.get("type") == "Bot":
            return "sent by a bot account"
    if delivery.source == "slack":
        inner = payload.get("event")
        if isinstance(inner, dict) and (inner.get("bot_id") or inner.get("subtype")):
            return "a bot message or a message edit, not a request"
    return None


def trust_reason(
    delivery: events.Delivery, *, allow_untrusted: bool = False, allow_forks: bool = False
) -> str | None:
    """Why a GitHub delivery's sender may not start a Session, or None.

    The author_association of what was written (the comment, review, issue or pull
    request) must be OWNER, MEMBER or COLLABORATOR; a pull request must come from a branch
    of the same repository, not a fork (or from a deleted one). GitHub sets
    author_association on every comment, review, issue and pull request it sends, so a
    payload of these events without one is refused too (fail closed: trust is never
    assumed from a missing field).
    """
    if delivery.source != "github" or delivery.event.split(".", 1)[0] not in _OPEN_EVENTS:
        return None
    payload = delivery.payload
    if not allow_untrusted:
        association: Any = None
        for key in ("comment", "review", "issue", "pull_request", "discussion"):
            item = payload.get(key)
            if isinstance(item, dict) and "author_association" in item:
                association = item["author_association"]
                break
        if association not in TRUSTED_ASSOCIATIONS:
            said = association if association is not None else "missing"
            return (
                f"the sender's author_association is {said}, not OWNER, MEMBER or "
                "COLLABORATOR (a route with allowUntrustedSenders takes it)"
            )
    pull = payload.get("pull_request")
    if not allow_forks and isinstance(pull, dict) and "head" in pull:
        head = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
        base = ((pull.get("base") or {}).get("repo") or {}).get("full_name")
        if not head or head != base:
            return (
                f"the pull request comes from a fork ({head or 'a deleted repository'}) "
                "(a route with allowForks takes it)"
            )
    return None


def trigger_repository(delivery: events.Delivery) -> dict[str, str]:
    """What the runner needs about the trigger's repository: ``repository`` (its URL) and
    ``ref`` (the pull request's head, a push's ref, else the default branch)."""
    payload = delivery.payload
    repo = payload.get("repository")
    if delivery.source != "github" or not isinstance(repo, dict):
        return {}
    out: dict[str, str] = {}
    if isinstance(repo.get("html_url"), str):
        out["repository"] = repo["html_url"]
    pull = payload.get("pull_request")
    ref: Any = None
    if isinstance(pull, dict) and isinstance(pull.get("head"), dict):
        head_repo = (pull["head"].get("repo") or {}).get("full_name")
        if head_repo == repo.get("full_name"):
            ref = pull["head"].get("ref")
        elif isinstance(pull.get("number"), int):
            ref = f"refs/pull/{pull['number']}/head"  # a fork's head, fetched from the base
    elif isinstance(payload.get("ref"), str):
        ref = payload["ref"]
    else:
        ref = repo.get("default_branch")
    if isinstance(ref, str) and ref:
        out["ref"] = ref
    return out


@dataclass(frozen=True)
class Routed:
    """What the routes decided: a manifest, or the reason nothing starts."""

    manifest: dict[str, Any] | None = None
    ignored: str | None = None
    route: str = ""
    notes: tuple[str, ...] = field(default=())


def decide(
    delivery: events.Delivery,
    headers: Mapping[str, str],
    *,
    namespace: str,
    ingress: IngressPolicy,
    defaults: SessionDefaults,
    table: RouteTable,
) -> Routed:
    """The Session a parsed delivery starts in ``namespace``, or why none. Filters and
    templates see the headers without the credentials (a key sent as a bearer token must
    not be rendered into a Session)."""
    headers = {k: v for k, v in headers.items() if k.lower() not in HIDDEN_HEADERS}
    if not table.routes:
        return _implicit(delivery, headers, namespace, ingress, defaults)
    loop = loop_reason(delivery)
    if loop is not None:
        return Routed(ignored=loop)
    notes: list[str] = []
    candidates = [
        c
        for c in table.routes
        if c.route.source == delivery.source and event_matches(delivery.event, c.route.events)
    ]
    filters = [c.filter for c in candidates if c.filter is not None and c.error is None]
    inputs = Inputs(filters, delivery.payload, headers, delivery.event, delivery.source)
    for compiled in candidates:
        if compiled.error is not None:
            # Fail closed: a route that cannot be evaluated does not let the delivery fall
            # through to a broader one after it.
            return Routed(
                ignored=f"route {compiled.name} does not compile: {compiled.error}",
                route=compiled.name,
            )
        if compiled.filter is not None:
            try:
                if not compiled.filter.holds(inputs):
                    continue
            except FilterError as exc:
                notes.append(f"route {compiled.name}: the filter failed ({exc})")
                continue
        return _take(delivery, headers, namespace, defaults, compiled)
    reason = f"no route of spec.ingress.routes takes {delivery.source} event {delivery.event}"
    if notes:
        reason += "; " + "; ".join(notes)
    return Routed(ignored=reason[:1024], notes=tuple(notes))


def _take(
    delivery: events.Delivery,
    headers: Mapping[str, str],
    namespace: str,
    defaults: SessionDefaults,
    compiled: CompiledRoute,
) -> Routed:
    route = compiled.route
    untrusted = trust_reason(
        delivery, allow_untrusted=route.allow_untrusted_senders, allow_forks=route.allow_forks
    )
    if untrusted is not None:
        return Routed(ignored=f"route {compiled.name}: {untrusted}", route=compiled.name)
    framework = route.framework or defaults.framework
    task = compiled.task
    try:
        config = _config(delivery, headers, framework, task, compiled.config)
    except (RenderError, CompileError) as exc:
        return Routed(
            ignored=f"route {compiled.name}: the task could not be rendered: {exc}",
            route=compiled.name,
        )
    manifest = events.build_session(
        delivery,
        namespace,
        SessionDefaults.model_construct(
            framework=framework,
            policy=route.policy or defaults.policy,
            timeout_seconds=route.timeout_seconds
            if route.timeout_seconds is not None
            else defaults.timeout_seconds,
        ),
    )
    manifest["spec"]["framework"]["config"] = config
    return Routed(manifest, route=compiled.name)


def _implicit(
    delivery: events.Delivery,
    headers: Mapping[str, str],
    namespace: str,
    ingress: IngressPolicy,
    defaults: SessionDefaults,
) -> Routed:
    reason = events.ignore_reason(delivery, ingress) or trust_reason(delivery)
    if reason is not None:
        return Routed(ignored=reason)
    try:
        config = _config(delivery, headers, defaults.framework, None, ())
    except (RenderError, CompileError) as exc:
        return Routed(ignored=f"the built-in task could not be rendered: {exc}")
    manifest = events.build_session(delivery, namespace, defaults)
    manifest["spec"]["framework"]["config"] = config
    return Routed(manifest)


def _config(
    delivery: events.Delivery,
    headers: Mapping[str, str],
    framework: Framework,
    task: Template | None,
    templates: tuple[tuple[str, Template], ...],
) -> dict[str, Any]:
    """The framework's config with the rendered task (the route's, else the built-in one
    unless the config has a prompt already), rendered values and the repository."""
    config = dict(framework.config)
    args = (delivery.payload, headers, delivery.event, delivery.source)
    if task is None and not config.get("prompt"):
        text = tasks.built_in(delivery.source, delivery.event)
        task = compile_built_in(text) if text is not None else None
    if task is not None:
        config["prompt"] = task.render(*args)
    for key, template in templates:
        config[key] = template.render(*args)
    for key, value in trigger_repository(delivery).items():
        config.setdefault(key, value)
    return config
