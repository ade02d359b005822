"""The claude-code runner's decisions: model, tools, checkout target, history data, usage."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ambient.runners.claude_code import plan
from ambient.runners.sdk.contract import ContractError

SHA = "a" * 40


def test_the_model_is_one_of_the_allowed() -> None:
    assert plan.choose_model(None, ["a", "b"]) == "a"
    assert plan.choose_model("b", ["a", "b"]) == "b"
    with pytest.raises(ContractError, match="not among the allowed"):
        plan.choose_model("c", ["a"])
    with pytest.raises(ContractError, match="allows no models"):
        plan.choose_model("a", [])


def test_blocked_wins_over_allowed_and_is_always_disallowed() -> None:
    tools = plan.tool_plan(["Read", "edit", "Bash(git:*)", "WebFetch"], ["bash", "WebFetch"])
    assert tools.tools == ["Read", "Edit"]
    assert tools.allowed == ["Read", "Edit"]
    assert tools.disallowed == ["Bash", "WebFetch"]
    # policies compare names case-insensitively; Claude Code gets its own spelling
    rules = plan.tool_plan(["bash(git status:*)", "mcp__jira__search"], [])
    assert rules.tools == ["Bash", "mcp__jira__search"]
    assert rules.allowed == ["Bash(git status:*)", "mcp__jira__search"]
    # a Session that allows nothing gets no tools, not Claude Code's defaults
    assert plan.tool_plan([], ["Bash"]) == plan.ToolPlan([], [], ["Bash"])
    assert plan.PERMISSION_MODE == "dontAsk"


@pytest.mark.parametrize("turns", [0, -1, 501, "5", True, 2.5])
def test_max_turns_must_be_a_bounded_integer(turns: object) -> None:
    with pytest.raises(ContractError, match="maxTurns"):
        plan.max_turns({"maxTurns": turns})
    assert plan.max_turns({}) == plan.DEFAULT_MAX_TURNS
    assert plan.max_turns({"maxTurns": 7}) == 7


def _pr(clone_url: str = "https://github.com/o/r.git") -> dict[str, object]:
    return {
        "pull_request": {"head": {"ref": "fix", "sha": SHA, "repo": {"clone_url": clone_url}}},
        "repository": {"clone_url": "https://github.com/o/base.git", "default_branch": "dev"},
    }


def test_a_pull_request_is_checked_out_at_its_head() -> None:
    target = plan.checkout_target(
        {"source": "github", "event": "pull_request.opened"}, _pr(), {}, allow_local=False
    )
    assert target == plan.Checkout("https://github.com/o/r.git", "fix", SHA)


def test_an_issue_uses_the_default_branch_and_a_push_its_branch() -> None:
    issue = {"repository": {"clone_url": "https://github.com/o/r.git", "default_branch": "dev"}}
    target = plan.checkout_target(
        {"source": "github", "event": "issues.opened"}, issue, {}, allow_local=False
    )
    assert target == plan.Checkout("https://github.com/o/r.git", "dev")
    push = {**issue, "ref": "refs/heads/feature/x", "after": SHA}
    target = plan.checkout_target(
        {"source": "github", "event": "push"}, push, {}, allow_local=False
    )
    assert target == plan.Checkout("https://github.com/o/r.git", "feature/x", SHA)


def test_jira_slack_and_alerts_use_the_routes_repository() -> None:
    for source in ("jira", "slack", "alertmanager"):
        trigger = {"source": source, "event": "e"}
        assert plan.checkout_target(trigger, {}, {}, allow_local=False) is None
        target = plan.checkout_target(
            trigger, {}, {"repository": "https://git.example/o/r.git"}, allow_local=False
        )
        assert target == plan.Checkout("https://git.example/o/r.git", "main")


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/o/r.git",
        "https://user:pw@github.com/o/r.git",
        "https://x-access-token@github.com/o/r.git",
        "file:///etc",
        "/srv/repo.git",
        "ssh://git@github.com/o/r.git",
        "ext::sh -c touch% /tmp/pwned",
        "https:///nohost",
    ],
)
def test_only_credential_free_https_urls_are_cloned(url: str) -> None:
    with pytest.raises(ContractError, match="https://"):
        plan.checkout_target({"source": "jira"}, {}, {"repository": url}, allow_local=False)


def test_local_repositories_only_when_allowed() -> None:
    target = plan.checkout_target(
        {"source": "jira"}, {}, {"repository": "file:///srv/r.git"}, allow_local=True
    )
    assert target is not None and target.url == "file:///srv/r.git"


@pytest.mark.parametrize("ref", ["-upload-pack=x", "a..b", "x.lock", "a b", "", "../x"])
def test_refs_that_git_could_misread_are_refused(ref: str) -> None:
    with pytest.raises(ContractError, match="not a valid git"):
        plan.check_ref(ref)


def test_a_bad_sha_is_ignored_and_the_branch_head_used() -> None:
    payload = _pr()
    payload["pull_request"]["head"]["sha"] = "--not-a-sha"  # type: ignore[index]
    target = plan.checkout_target(
        {"source": "github", "event": "pull_request.opened"}, payload, {}, allow_local=False
    )
    assert target is not None and target.sha == ""


def test_the_push_branch_comes_from_the_route() -> None:
    assert plan.push_branch({}, "s1") is None
    assert plan.push_branch({"push": "yes"}, "s1") is None
    assert plan.push_branch({"push": True}, "s1") == "ambient/s1"
    assert plan.push_branch({"branch": "fix/flaky"}, "s1") == "fix/flaky"
    with pytest.raises(ContractError):
        plan.push_branch({"branch": "--force"}, "s1")


def test_a_tool_use_is_summarised_briefly() -> None:
    entry = plan.tool_entry("Edit", {"file_path": "/w/a.py", "old_string": "x" * 10_000}, False, "")
    assert entry == {"tool": "Edit", "input": "/w/a.py", "outcome": "ok"}
    long = plan.tool_entry("Bash", {"command": "echo " + "y" * 1000}, True, "denied " * 100)
    assert len(long["input"]) == plan.SUMMARY_CHARS and long["input"].endswith("…")
    assert long["outcome"] == "error" and len(long["error"]) <= plan.SUMMARY_CHARS
    other = plan.tool_entry("mcp__x", {"b": 1, "a": [1, 2]}, True, [{"type": "text", "text": "no"}])
    assert other["input"] == '{"a": [1, 2], "b": 1}' and other["error"] == "no"


def test_usage_is_claude_codes_own_accounting() -> None:
    per_model = {
        "claude-sonnet-4-5": {
            "inputTokens": 100,
            "outputTokens": 10,
            "cacheReadInputTokens": 5,
            "cacheCreationInputTokens": 1,
        },
        "claude-haiku-4-5": {"inputTokens": 7, "outputTokens": 3},
    }
    used = plan.spend(0.018000000000000002, per_model, {"input_tokens": 1})
    assert used == plan.Spend(113, 13, Decimal("0.018000"))
    assert plan.spend(None, None, {"input_tokens": 4, "output_tokens": 2}) == plan.Spend(
        4, 2, Decimal("0.000000")
    )
    assert plan.budget_usd(None) is None
    assert plan.budget_usd(Decimal("0.05")) == 0.05


def test_the_system_prompt_names_the_trigger_file_and_checkout() -> None:
    text = plan.system_append(
        {"source": "github", "event": "issues.opened"},
        "/workspace/.ambient/trigger.json",
        plan.Checkout("https://github.com/o/r.git", "main"),
        push="ambient/s1",
    )
    assert "/workspace/.ambient/trigger.json" in text
    assert "github issues.opened" in text and "https://github.com/o/r.git at main" in text
    assert "pushes them to the branch ambient/s1" in text
    quiet = plan.system_append({}, "/t.json", None, push=None)
    assert "branch" not in quiet and "checkout" not in quiet
