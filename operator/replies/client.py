"""HTTP to GitHub, Jira and Slack for replies: look for a reply's marker, post it.

The GitHub and Slack API base URLs are operator settings (trusted); the Jira site comes
from the tenant's Secret, so its requests go through the notification egress rule
(ambient.operator.notify.sender.CheckedResolver: every address the name resolves to is
checked, address literals too, redirects never followed) on a client of their own, and
must be https. Response bodies are read only where the API's answer is needed (a lookup,
a token, Slack's ``ok``); of them only the reply's URL (GitHub), numeric id (Jira) or ts
(Slack) reaches history, never an error body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ambient.crds import credentials as keys
from ambient.operator.notify import egress
from ambient.operator.notify.sender import CheckedResolver, EgressRefusedError, Resolve
from ambient.operator.notify.sender import system_resolve as _system_resolve
from ambient.operator.replies import rules
from ambient.operator.replies.githubapp import AppKeyError, app_jwt
from ambient.operator.replies.rules import Kind, Reply

GITHUB_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "ambient-operator",
}
LOOKUP_PAGES = 10  # at most 1,000 comments (or thread messages) are searched for a marker
SLACK_RETRYABLE = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


@dataclass(frozen=True)
class Answer:
    """How one attempt ended."""

    ok: bool
    status: int | None
    """The last HTTP status; None when no response came back."""
    error: str = ""
    retry_after: str | None = None
    """The Retry-After header of a 429 or 5xx."""
    found: bool = False
    """The reply was already at the source (posted before a kill): nothing was posted."""
    ref: str = ""
    """The posted (or found) comment's URL or message ts."""
    final: bool = False
    """Not worth retrying whatever the status says (e.g. a Slack error code)."""


class Credentials:
    """The data of Secret ambient-source-credentials (values never logged)."""

    def __init__(self, data: Mapping[str, bytes]) -> None:
        self._data = {k: v.decode().strip() for k, v in data.items() if v}

    def get(self, key: str) -> str:
        return self._data.get(key, "")

    def missing(self, kind: Kind) -> str:
        """Why these credentials cannot reply to ``kind`` ("" when they can)."""
        if kind in (Kind.GITHUB, Kind.GITHUB_CHECK):
            if kind is Kind.GITHUB_CHECK and not self.has_app:
                return (
                    "check runs need a GitHub App (github-app-id, -private-key, -installation-id)"
                )
            if self.has_app or self.get(keys.GITHUB_TOKEN_KEY):
                return ""
            return f"no {keys.GITHUB_TOKEN_KEY} and no GitHub App keys"
        if kind is Kind.JIRA:
            needed = (keys.JIRA_BASE_URL_KEY, keys.JIRA_EMAIL_KEY, keys.JIRA_API_TOKEN_KEY)
            absent = [k for k in needed if not self.get(k)]
            return f"no {', '.join(absent)}" if absent else ""
        return "" if self.get(keys.SLACK_BOT_TOKEN_KEY) else f"no {keys.SLACK_BOT_TOKEN_KEY}"

    @property
    def has_app(self) -> bool:
        return all(
            self.get(k)
            for k in (
                keys.GITHUB_APP_ID_KEY,
                keys.GITHUB_APP_PRIVATE_KEY_KEY,
                keys.GITHUB_APP_INSTALLATION_KEY,
            )
        )


class _FailedError(Exception):
    """An answer that ends the attempt early (a failed lookup or token exchange)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error)
        self.answer = answer


class ReplyClient:
    """Two HTTP clients (trusted API URLs; the tenant's Jira through the egress rule)."""

    def __init__(
        self,
        github_api: str,
        slack_api: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        egress_rule: egress.EgressRule | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        resolve: Resolve = _system_resolve,
    ) -> None:
        self._github = github_api.rstrip("/")
        self._slack = slack_api.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context else True
        self._rule = egress_rule or egress.EgressRule()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._resolve = resolve
        self._trusted: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None
        # Installation tokens by (app id, installation): (expiry, token).
        self._tokens: dict[tuple[str, str], tuple[float, str]] = {}
        self._token_lock = asyncio.Lock()

    async def start(self) -> None:
        self._trusted = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(ssl=self._ssl),
            trust_env=False,
        )
        self._guarded = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(
                ssl=self._ssl,
                resolver=CheckedResolver(self._rule, self._resolve),
                use_dns_cache=False,
                force_close=True,
            ),
            trust_env=False,
        )

    async def stop(self) -> None:
        for http in (self._trusted, self._guarded):
            if http is not None:
                await http.close()
        self._trusted = self._guarded = None

    async def send(
        self,
        reply: Reply,
        message: dict[str, Any],
        creds: Credentials,
        *,
        look_first: bool,
        since: str | None,
    ) -> Answer:
        """One attempt: when ``look_first`` (an earlier attempt may have landed), look for
        the marker and post only when it is not there."""
        try:
            if reply.kind is Kind.GITHUB:
                return await self._github_comment(reply, message, creds, look_first, since)
            if reply.kind is Kind.GITHUB_CHECK:
                return await self._github_check(reply, message, creds)
            if reply.kind is Kind.JIRA:
                return await self._jira(reply, message, creds, look_first)
            return await self._slack_post(reply, message, creds, look_first, since)
        except _FailedError as failed:
            return failed.answer
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, EgressRefusedError):
                return Answer(False, None, str(exc.os_error), final=True)
            return Answer(False, None, type(exc).__name__)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Answer(False, None, type(exc).__name__)

    # --- plumbing -------------------------------------------------------------------------

    async def _call(
        self,
        http: aiohttp.ClientSession | None,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, str | None]:
        assert http is not None, "ReplyClient.start() was not awaited"
        async with http.request(
            method, url, json=body, headers=headers, params=params, allow_redirects=False
        ) as rsp:
            data: Any = None
            if 200 <= rsp.status < 300:
                with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                    data = await rsp.json()
            return rsp.status, data, rsp.headers.get("Retry-After")

    @staticmethod
    def _answer(status: int, retry_after: str | None, what: str) -> Answer:
        if 300 <= status < 400:
            return Answer(
                False, status, f"{what}: redirect not followed (HTTP {status})", final=True
            )
        return Answer(False, status, f"{what}: HTTP {status}", retry_after)

    async def _github_auth(self, creds: Credentials) -> dict[str, str]:
        if not creds.has_app:
            return {**GITHUB_HEADERS, "Authorization": f"Bearer {creds.get(keys.GITHUB_TOKEN_KEY)}"}
        app_id = creds.get(keys.GITHUB_APP_ID_KEY)
        installation = creds.get(keys.GITHUB_APP_INSTALLATION_KEY)
        async with self._token_lock:
            cached = self._tokens.get((app_id, installation))
            if cached is not None and cached[0] - 300 > self._clock():
                token = cached[1]
            else:
                token = await self._installation_token(creds, app_id, installation)
        return {**GITHUB_HEADERS, "Authorization": f"Bearer {token}"}

    async def _installation_token(self, creds: Credentials, app_id: str, installation: str) -> str:
        try:
            jwt = app_jwt(
                app_id, creds.get(keys.GITHUB_APP_PRIVATE_KEY_KEY).encode(), int(self._clock())
            )
        except AppKeyError as exc:
            raise _FailedError(Answer(False, None, str(exc), final=True)) from exc
        url = f"{self._github}/app/installations/{quote(installation, safe='')}/access_tokens"
        status, data, after = await self._call(
            self._trusted, "POST", url, {**GITHUB_HEADERS, "Authorization": f"Bearer {jwt}"}
        )
        if not 200 <= status < 300 or not isinstance(data, dict) or not data.get("token"):
            raise _FailedError(self._answer(status, after, "installation token"))
        expiry = self._clock() + 3600
        with contextlib.suppress(TypeError, ValueError):
            expiry = datetime.fromisoformat(str(data.get("expires_at"))).timestamp()
        self._tokens[(app_id, installation)] = (expiry, str(data["token"]))
        return str(data["token"])

    # --- GitHub ---------------------------------------------------------------------------

    def _repo(self, reply: Reply) -> str:
        owner, name = str(reply.target.repository).split("/", 1)
        return f"{self._github}/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    async def _github_comment(
        self,
        reply: Reply,
        message: dict[str, Any],
        creds: Credentials,
        look_first: bool,
        since: str | None,
    ) -> Answer:
        headers = await self._github_auth(creds)
        url = f"{self._repo(reply)}/issues/{reply.target.number}/comments"
        if look_first:
            for page in range(1, LOOKUP_PAGES + 1):
                params = {"per_page": "100", "page": str(page)}
                if since:
                    params["since"] = since
                status, data, after = await self._call(
                    self._trusted, "GET", url, headers, params=params
                )
                if not 200 <= status < 300 or not isinstance(data, list):
                    return self._answer(status, after, "looking for an earlier reply")
                for comment in data:
                    if isinstance(comment, dict) and rules.has_marker(
                        [str(comment.get("body") or "")], reply
                    ):
                        return Answer(True, status, found=True, ref=str(comment.get("html_url")))
                if len(data) < 100:
                    break
        status, data, after = await self._call(self._trusted, "POST", url, headers, message)
        if 200 <= status < 300:
            ref = str(data.get("html_url", "")) if isinstance(data, dict) else ""
            return Answer(True, status, ref=ref)
        return self._answer(status, after, "comment")

    async def _github_check(
        self, reply: Reply, message: dict[str, Any], creds: Credentials
    ) -> Answer:
        """Check runs are looked up every time (by the Session's uid as external_id): the
        started run is completed by the ended reply rather than a second run posted."""
        headers = await self._github_auth(creds)
        sha = str(reply.target.head_sha)
        url = f"{self._repo(reply)}/commits/{sha}/check-runs"
        status, data, after = await self._call(
            self._trusted, "GET", url, headers, params={"check_name": rules.CHECK_RUN_NAME}
        )
        if not 200 <= status < 300 or not isinstance(data, dict):
            return self._answer(status, after, "looking for the check run")
        existing = [
            run
            for run in data.get("check_runs") or []
            if isinstance(run, dict) and run.get("external_id") == reply.uid
        ]
        if existing:
            run = existing[0]
            done = run.get("status") == "completed"
            if done or message["status"] != "completed":
                return Answer(True, status, found=True, ref=str(run.get("html_url")))
            patch_url = f"{self._repo(reply)}/check-runs/{run.get('id')}"
            status, data, after = await self._call(
                self._trusted, "PATCH", patch_url, headers, message
            )
        else:
            body = {"name": rules.CHECK_RUN_NAME, "head_sha": sha, **message}
            status, data, after = await self._call(
                self._trusted, "POST", f"{self._repo(reply)}/check-runs", headers, body
            )
        if 200 <= status < 300:
            ref = str(data.get("html_url", "")) if isinstance(data, dict) else ""
            return Answer(True, status, ref=ref)
        return self._answer(status, after, "check run")

    # --- Jira -----------------------------------------------------------------------------

    async def _jira(
        self, reply: Reply, message: dict[str, Any], creds: Credentials, look_first: bool
    ) -> Answer:
        base = creds.get(keys.JIRA_BASE_URL_KEY).rstrip("/")
        if urlsplit(base).scheme != "https":
            return Answer(False, None, f"{keys.JIRA_BASE_URL_KEY} must be an https URL", final=True)
        refused = egress.literal_refusal(self._rule, base)
        if refused:
            return Answer(False, None, f"egress refused: {refused} address", final=True)
        basic = base64.b64encode(
            f"{creds.get(keys.JIRA_EMAIL_KEY)}:{creds.get(keys.JIRA_API_TOKEN_KEY)}".encode()
        ).decode()
        headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        url = f"{base}/rest/api/2/issue/{quote(str(reply.target.issue_key), safe='')}/comment"
        if look_first:
            params = {"expand": "properties", "orderBy": "-created", "maxResults": "100"}
            status, data, after = await self._call(
                self._guarded, "GET", url, headers, params=params
            )
            if not 200 <= status < 300 or not isinstance(data, dict):
                return self._answer(status, after, "looking for an earlier reply")
            for comment in data.get("comments") or []:
                if isinstance(comment, dict) and rules.has_marker(_jira_texts(comment), reply):
                    found_id = str(comment.get("id", ""))
                    return Answer(
                        True, status, found=True, ref=found_id if found_id.isdigit() else ""
                    )
        status, data, after = await self._call(self._guarded, "POST", url, headers, message)
        if 200 <= status < 300:
            found_id = str(data.get("id", "")) if isinstance(data, dict) else ""
            return Answer(True, status, ref=found_id if found_id.isdigit() else "")
        return self._answer(status, after, "comment")

    # --- Slack ----------------------------------------------------------------------------

    async def _slack_post(
        self,
        reply: Reply,
        message: dict[str, Any],
        creds: Credentials,
        look_first: bool,
        since: str | None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {creds.get(keys.SLACK_BOT_TOKEN_KEY)}"}
        if look_first:
            # In the thread; without one (a slash command) the channel since the Session.
            method, where = "conversations.replies", {"ts": str(reply.target.thread_ts)}
            if not reply.target.thread_ts:
                method, where = "conversations.history", {"oldest": _epoch(since)}
            cursor = ""
            for _ in range(LOOKUP_PAGES):
                params = {
                    "channel": str(reply.target.channel),
                    **where,
                    "include_all_metadata": "true",
                    "limit": "200",
                }
                if cursor:
                    params["cursor"] = cursor
                status, data, after = await self._call(
                    self._trusted, "GET", f"{self._slack}/{method}", headers, params=params
                )
                failed = _slack_failure(status, data, after, "looking for an earlier reply")
                if failed is not None:
                    return failed
                for msg in data.get("messages") or []:
                    payload = (msg.get("metadata") or {}).get("event_payload") or {}
                    if rules.has_marker([str(payload.get("reply", ""))], reply):
                        return Answer(True, status, found=True, ref=str(msg.get("ts", "")))
                cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
                if not cursor:
                    break
        status, data, after = await self._call(
            self._trusted, "POST", f"{self._slack}/chat.postMessage", headers, message
        )
        failed = _slack_failure(status, data, after, "chat.postMessage")
        if failed is not None:
            return failed
        return Answer(True, status, ref=str(data.get("ts", "")))


def _epoch(rfc3339: str | None) -> str:
    """Slack's ``oldest``: seconds since the epoch ("0" when the time is unknown)."""
    try:
        return str(int(datetime.fromisoformat(str(rfc3339).replace("Z", "+00:00")).timestamp()))
    except ValueError:
        return "0"


def _jira_texts(comment: dict[str, Any]) -> list[str]:
    texts = [str(comment.get("body") or "")]
    for prop in comment.get("properties") or []:
        if isinstance(prop, dict) and prop.get("key") == rules.JIRA_PROPERTY:
            value = prop.get("value")
            texts.append(str(value.get("reply", "")) if isinstance(value, dict) else "")
    return texts


def _slack_failure(status: int, data: Any, after: str | None, what: str) -> Answer | None:
    """Slack answers 200 with ``ok: false`` for most errors; None when the call succeeded."""
    if not 200 <= status < 300:
        return ReplyClient._answer(status, after, what)
    if not isinstance(data, dict):
        return Answer(False, status, f"{what}: not a Slack API answer")
    if data.get("ok") is True:
        return None
    error = str(data.get("error") or "unknown_error")[:64]
    return Answer(False, status, f"{what}: {error}", final=error not in SLACK_RETRYABLE)
