"""The reply client against a real local HTTP server (aiohttp's): lookups by marker,
Slack's ok:false, redirects not followed, Retry-After carried, the Jira site checked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ambient.crds import credentials as keys
from ambient.crds.models import ReplyTarget
from ambient.operator.replies.client import Answer, Credentials, ReplyClient
from ambient.operator.replies.rules import Kind, Outcome, Reply

UID = "uid-1"
TOKEN = {keys.GITHUB_TOKEN_KEY: b"ghp_x", keys.SLACK_BOT_TOKEN_KEY: b"xoxb-x"}


def _reply(kind: Kind, **target: Any) -> Reply:
    return Reply(kind, Outcome.ENDED, "team-a", "s1", UID, ReplyTarget.model_validate(target))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _run(routes: dict[tuple[str, str], Handler], call: Callable[[ReplyClient, str], Any]) -> Any:
    async def main() -> Any:
        app = web.Application()
        for (method, path), handler in routes.items():
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        client = ReplyClient(f"{base}/gh", f"{base}/slack")
        await client.start()
        try:
            return await call(client, base)
        finally:
            await client.stop()
            await runner.cleanup()

    return asyncio.run(main())


def test_github_lookup_pages_through_comments_and_finds_the_marker() -> None:
    posts: list[Any] = []

    async def comments(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        if page == 1:
            return web.json_response([{"body": "unrelated"}] * 100)
        return web.json_response([{"body": f"x <!-- ambient:{UID}:ended -->", "html_url": "u2"}])

    async def post(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.json_response({"html_url": "new"}, status=201)

    path = "/gh/repos/octo/app/issues/7/comments"
    answer: Answer = _run(
        {("GET", path): comments, ("POST", path): post},
        lambda c, _: c.send(
            _reply(Kind.GITHUB, repository="octo/app", number=7),
            {"body": "hi"},
            Credentials(TOKEN),
            look_first=True,
            since=None,
        ),
    )
    assert (answer.ok, answer.found, answer.ref) == (True, True, "u2")
    assert posts == []


def test_a_redirect_is_a_final_failure_and_retry_after_is_carried() -> None:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://elsewhere/"})

    async def limited(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "7"})

    reply = _reply(Kind.GITHUB, repository="octo/app", number=7)
    answers = _run(
        {
            ("POST", "/gh/repos/octo/app/issues/7/comments"): moved,
            ("POST", "/slack/chat.postMessage"): limited,
        },
        lambda c, _: asyncio.gather(
            c.send(reply, {}, Credentials(TOKEN), look_first=False, since=None),
            c.send(
                _reply(Kind.SLACK, channel="C1"),
                {},
                Credentials(TOKEN),
                look_first=False,
                since=None,
            ),
        ),
    )
    assert (answers[0].ok, answers[0].final, answers[0].status) == (False, True, 302)
    assert "redirect not followed" in answers[0].error
    assert (answers[1].status, answers[1].retry_after, answers[1].final) == (429, "7", False)


def test_slack_ok_false_is_final_unless_transient() -> None:
    errors = iter(["ratelimited", "channel_not_found"])

    async def post(request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error": next(errors)})

    slack = _reply(Kind.SLACK, channel="C1", thread_ts="1.2")
    send = lambda c: c.send(slack, {}, Credentials(TOKEN), look_first=False, since=None)  # noqa: E731

    async def twice(c: ReplyClient, _: str) -> list[Answer]:
        return [await send(c), await send(c)]

    first, second = _run({("POST", "/slack/chat.postMessage"): post}, twice)
    assert (first.ok, first.final, first.error) == (False, False, "chat.postMessage: ratelimited")
    assert (second.final, second.error) == (True, "chat.postMessage: channel_not_found")


def test_the_jira_site_must_be_https_and_pass_the_egress_rule() -> None:
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({}, status=201)

    def creds(base: str) -> Credentials:
        return Credentials(
            {
                keys.JIRA_BASE_URL_KEY: base.encode(),
                keys.JIRA_EMAIL_KEY: b"a@b.c",
                keys.JIRA_API_TOKEN_KEY: b"t",
            }
        )

    jira = _reply(Kind.JIRA, issue_key="OPS-1")

    async def both(c: ReplyClient, base: str) -> list[Answer]:
        plain = await c.send(jira, {}, creds(base), look_first=False, since=None)
        port = base.rsplit(":", 1)[1]
        loop = await c.send(
            jira, {}, creds(f"https://127.0.0.1:{port}"), look_first=False, since=None
        )
        return [plain, loop]

    plain, loop = _run({("POST", "/rest/api/2/issue/OPS-1/comment"): anything}, both)
    assert (plain.final, plain.error) == (True, "jira-base-url must be an https URL")
    assert (loop.final, loop.error) == (True, "egress refused: loopback address")
    assert seen == []


def test_missing_credentials_are_named() -> None:
    assert Credentials({}).missing(Kind.GITHUB) == "no github-token and no GitHub App keys"
    assert Credentials(TOKEN).missing(Kind.GITHUB) == ""
    assert "GitHub App" in Credentials(TOKEN).missing(Kind.GITHUB_CHECK)
    assert Credentials({keys.JIRA_EMAIL_KEY: b"x"}).missing(Kind.JIRA) == (
        "no jira-base-url, jira-api-token"
    )
    assert Credentials({}).missing(Kind.SLACK) == "no slack-bot-token"


def test_slack_without_a_thread_looks_in_the_channel_since_the_session() -> None:
    seen: list[dict[str, str]] = []
    posts: list[Any] = []

    async def history(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        metadata = {
            "event_type": "ambient_reply",
            "event_payload": {"reply": f"ambient:{UID}:ended"},
        }
        return web.json_response({"ok": True, "messages": [{"ts": "9.1", "metadata": metadata}]})

    async def post(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.json_response({"ok": True, "ts": "9.2"})

    answer: Answer = _run(
        {
            ("GET", "/slack/conversations.history"): history,
            ("POST", "/slack/chat.postMessage"): post,
        },
        lambda c, _: c.send(
            _reply(Kind.SLACK, channel="C1"),
            {},
            Credentials(TOKEN),
            look_first=True,
            since="2026-03-01T12:00:00Z",
        ),
    )
    assert (answer.ok, answer.found, answer.ref) == (True, True, "9.1")
    assert posts == []
    assert seen[0]["oldest"] == "1772366400"
    assert seen[0]["include_all_metadata"] == "true"
