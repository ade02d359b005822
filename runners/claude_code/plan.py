"""What the claude-code runner decides before and after Claude Code runs (no I/O).

The model, the tool lists Claude Code gets, the repository and ref to check out, the
system prompt's addition, what one tool use leaves in history, and the usage the SDK's
result reports. ``runner`` does the I/O around these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from ambient.runners.sdk.contract import ContractError

PERMISSION_MODE = "dontAsk"
"""Claude Code's mode that never asks a person: a tool not pre-approved is denied."""
DEFAULT_MAX_TURNS = 30
MAX_TURNS_LIMIT = 500
SUMMARY_CHARS = 200
"""A tool input's summary in history: enough to tell what was done, never a whole file."""
DEFAULT_BRANCH_PREFIX = "ambient/"
BUDGET_RESULT = "error_max_budget_usd"
"""The SDK result's subtype when Claude Code stopped at max_budget_usd."""
MICRO = Decimal("0.000001")

# The field that says what a built-in tool was asked to do; others get compact JSON.
_KEY_FIELDS = {
    "Bash": "command",
    "Read": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "NotebookEdit": "notebook_path",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebFetch": "url",
    "WebSearch": "query",
    "Task": "description",
    "Agent": "description",
}
# Git refs and branch names: no option-looking or path-escaping names (git check-ref-format
# refuses the rest when it is used).
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,200}$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def choose_model(requested: str | None, allowed: list[str]) -> str:
    """The model to use: the requested one if allowed, else the first allowed."""
    if not allowed:
        raise ContractError("the Session allows no models (spec.policy.modelConstraints.allowed)")
    if requested and requested not in allowed:
        raise ContractError(f"model {requested!r} is not among the allowed models {allowed}")
    return requested or allowed[0]


@dataclass(frozen=True)
class ToolPlan:
    """Claude Code's tool options: ``tools`` is what the model sees, ``allowed`` what runs
    without asking (the same), ``disallowed`` what is refused even if asked for."""

    tools: list[str]
    allowed: list[str]
    disallowed: list[str]


# Claude Code's built-in tools by their exact names: policies compare tool names
# case-insensitively, Claude Code does not, so 'bash' in a policy means Bash.
_BUILT_IN = {
    n.casefold(): n
    for n in (
        "Agent", "Bash", "BashOutput", "Edit", "Glob", "Grep", "KillShell", "LS", "MultiEdit",
        "NotebookEdit", "NotebookRead", "Read", "Skill", "Task", "TodoWrite", "ToolSearch",
        "WebFetch", "WebSearch", "Write",
    )
}  # fmt: skip


def _base(name: str) -> str:
    """'Bash(git:*)' names the tool Bash with a rule; the tool list takes the bare name."""
    return name.split("(", 1)[0]


def canonical(name: str) -> str:
    """A tool name (with its rule, if any) as Claude Code spells it."""
    base = _base(name)
    return _BUILT_IN.get(base.casefold(), base) + name[len(base) :]


def tool_plan(allowed: list[str], blocked: list[str]) -> ToolPlan:
    """The Session's allowed tools less the namespace's blocked ones (case-insensitive;
    blocked wins); the blocked ones are also passed as disallowed so Claude Code refuses
    them even through a subagent. No allowed tools means Claude Code gets none."""
    blocked_keys = {_base(b).casefold() for b in blocked}
    kept = [canonical(a) for a in allowed if _base(a).casefold() not in blocked_keys]
    tools = list(dict.fromkeys(_base(a) for a in kept))
    disallowed = sorted({canonical(b) for b in blocked})
    return ToolPlan(tools=tools, allowed=list(dict.fromkeys(kept)), disallowed=disallowed)


def max_turns(config: dict[str, Any]) -> int:
    """framework.config.maxTurns, bounded."""
    value = config.get("maxTurns", DEFAULT_MAX_TURNS)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TURNS_LIMIT:
        raise ContractError(f"framework.config.maxTurns must be an integer 1..{MAX_TURNS_LIMIT}")
    return value


@dataclass(frozen=True)
class Checkout:
    """The repository to clone and the ref (and commit, when known) to work on."""

    url: str
    ref: str
    sha: str = ""


def check_url(url: str, *, allow_local: bool) -> str:
    """https only, without credentials in it; a local path or file:// only when the runner
    is told so (tests). Anything else is refused before git sees it."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname and not parts.username and not parts.password:
        return url
    if allow_local and (parts.scheme == "file" or (not parts.scheme and url.startswith("/"))):
        return url
    raise ContractError(
        f"repository {url!r} must be an https:// URL without credentials in it "
        "(the token comes from the Secret ambient-source-credentials)"
    )


def check_ref(ref: str, what: str = "ref") -> str:
    if not _REF.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/")):
        raise ContractError(f"{what} {ref!r} is not a valid git branch or tag name")
    return ref


def _github(event: str, payload: dict[str, Any]) -> Checkout | None:
    pr = payload.get("pull_request")
    if isinstance(pr, dict):  # pull_request.*, pull_request_review*: the PR's head
        head = pr.get("head") or {}
        repo = head.get("repo") or payload.get("repository") or {}
        return Checkout(
            str(repo.get("clone_url") or ""), str(head.get("ref") or ""), str(head.get("sha") or "")
        )
    repo = payload.get("repository") or {}
    if not isinstance(repo, dict) or not repo.get("clone_url"):
        return None
    ref = str(payload.get("ref") or "")
    if event.startswith("push") and ref.startswith("refs/heads/"):
        return Checkout(
            str(repo["clone_url"]), ref.removeprefix("refs/heads/"), str(payload.get("after") or "")
        )
    # issues, issue comments and the rest: the default branch
    return Checkout(str(repo["clone_url"]), str(repo.get("default_branch") or "main"))


def checkout_target(
    trigger: dict[str, Any], payload: dict[str, Any], config: dict[str, Any], *, allow_local: bool
) -> Checkout | None:
    """What to check out: framework.config ``repository`` (and ``ref``) when the route
    names one (Jira, Slack, alerts), else a GitHub event's repository at its pull
    request's head, its pushed branch, or its default branch. None: no repository."""
    named = config.get("repository")
    if named:
        target = Checkout(str(named), str(config.get("ref") or "main"))
    elif trigger.get("source") == "github":
        found = _github(str(trigger.get("event", "")), payload)
        if found is None:
            return None
        target = found
    else:
        return None
    sha = target.sha if _SHA.fullmatch(target.sha) else ""
    return Checkout(
        check_url(target.url, allow_local=allow_local), check_ref(target.ref or "main"), sha
    )


def push_branch(config: dict[str, Any], session: str) -> str | None:
    """The branch to push the changes to: config ``branch``, else ambient/<session> when
    config ``push`` is true; None when the route asks for no push."""
    branch = config.get("branch")
    if branch:
        return check_ref(str(branch), "framework.config.branch")
    if config.get("push") is True:
        return check_ref(DEFAULT_BRANCH_PREFIX + session, "branch")
    return None


def summarize_input(tool: str, tool_input: dict[str, Any]) -> str:
    """A short, bounded line that says what the tool was asked to do."""
    key = _KEY_FIELDS.get(tool)
    if key and isinstance(tool_input.get(key), str):
        text = str(tool_input[key])
    else:
        text = json.dumps(tool_input, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def result_text(content: Any) -> str:
    """A tool result's text (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def tool_entry(
    tool: str, tool_input: dict[str, Any], is_error: bool, content: Any
) -> dict[str, str]:
    """The history data of one tool use: tool, input summary, outcome (and the error's
    first words when it failed, e.g. Claude Code refusing a blocked tool)."""
    data = {
        "tool": tool,
        "input": summarize_input(tool, tool_input),
        "outcome": "error" if is_error else "ok",
    }
    if is_error:
        data["error"] = " ".join(result_text(content).split())[:SUMMARY_CHARS]
    return data


def system_append(
    trigger: dict[str, Any], trigger_file: str, checkout: Checkout | None, *, push: str | None
) -> str:
    """What Claude Code's system prompt gets beyond its own: where the trigger is and what
    the workspace holds."""
    lines = [
        "You run unattended inside an Ambient Session: nobody can answer questions; do the "
        "task and end with a short summary of what you did.",
        f"The event that started this Session ({trigger.get('source', '?')} "
        f"{trigger.get('event', '?')}) is in {trigger_file} (JSON); read it for details.",
    ]
    if checkout is not None:
        lines.append(f"The working directory is a checkout of {checkout.url} at {checkout.ref}.")
        if push:
            lines.append(
                f"Leave your changes in the working tree: the runner commits them and pushes "
                f"them to the branch {push}."
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class Spend:
    """Claude Code's own accounting of the run."""

    input_tokens: int
    output_tokens: int
    cost: Decimal


def spend(
    total_cost_usd: float | None, model_usage: dict[str, Any] | None, usage: dict[str, Any] | None
) -> Spend:
    """Tokens and cost as the SDK's ResultMessage reports them: per-model totals when
    present (cache reads and writes count as input), else the result's usage."""
    # The CLI sums floats; a millionth of a dollar is below any price's precision.
    cost = Decimal(str(total_cost_usd or 0)).quantize(MICRO)
    if model_usage:
        inp = sum(
            int(m.get("inputTokens", 0))
            + int(m.get("cacheReadInputTokens", 0))
            + int(m.get("cacheCreationInputTokens", 0))
            for m in model_usage.values()
        )
        out = sum(int(m.get("outputTokens", 0)) for m in model_usage.values())
        return Spend(inp, out, cost)
    u = usage or {}
    inp = (
        int(u.get("input_tokens", 0))
        + int(u.get("cache_read_input_tokens", 0))
        + int(u.get("cache_creation_input_tokens", 0))
    )
    return Spend(inp, int(u.get("output_tokens", 0)), cost)


def budget_usd(left: Decimal | None) -> float | None:
    """Claude Code's max_budget_usd: what is left of the Session's budget (None: no cap)."""
    return None if left is None else float(left)
