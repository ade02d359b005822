"""The built-in tasks: what a Session is asked to do when its route names no task. Pure data.

Each is a template (``compiled.compile_template``) over body, headers, event and source,
keyed by source and event; a route (or the implicit one of ``spec.defaults``) whose event
has one renders it into ``framework.config.prompt``, unless the route sets ``task`` or the
framework's config already has a prompt. They are rendered leniently
(``compiled.compile_built_in``: a missing value renders empty), so any payload of the
event gets a task; free text is cut to 4,000 characters.
"""

from __future__ import annotations

_PULL_REQUEST = """\
Review pull request {{ body.pull_request.html_url }} in {{ body.repository.full_name }}: \
"{{ body.pull_request.title }}" by @{{ body.pull_request.user.login }}, \
{{ body.pull_request.head.ref }} into {{ body.pull_request.base.ref }} \
(head commit {{ body.pull_request.head.sha }}).
{% if body.pull_request.body %}
The description says:
{{ body.pull_request.body | string | truncate(4000) }}
{% endif %}
Read the change, check it for bugs, missing tests and unclear code, and give a concise \
review: what is wrong or risky, with file and line, and what is good to go."""

_COMMENT = """\
@{{ body.comment.user.login }} asked for help in a comment on \
{{ (body.issue or body.pull_request).html_url }} \
({{ body.repository.full_name }}): {{ body.comment.html_url }}

{{ body.comment.body | string | truncate(4000) }}

Do what the comment asks, in the context of that issue or pull request, and answer it \
with what you did or found."""

_ISSUE = """\
Triage issue {{ body.issue.html_url }} in {{ body.repository.full_name }}: \
"{{ body.issue.title }}" opened by @{{ body.issue.user.login }}.
{% if body.issue.body %}
{{ body.issue.body | string | truncate(4000) }}
{% endif %}
Find the code it concerns, say whether it is a bug, a feature request or a question, how \
severe it is, and what the fix would be; label suggestions welcome."""

_JIRA_ISSUE = """\
Triage Jira issue {{ body.issue.key }}: "{{ body.issue.fields.summary }}"\
{% if body.issue.fields.issuetype %} ({{ body.issue.fields.issuetype.name }})\
{% endif %}.
{% if body.issue.fields.description %}
{{ body.issue.fields.description | string | truncate(4000) }}
{% endif %}
Say what it asks for, which code it concerns, how urgent it is and what the next step is."""

_JIRA_COMMENT = """\
{{ body.comment.author.displayName or "Someone" }} commented on Jira issue \
{{ body.issue.key or "(unknown)" }} \
("{{ body.issue.fields.summary }}"):

{{ body.comment.body | string | truncate(4000) }}

Do what the comment asks and answer it with what you did or found."""

_SLACK_MENTION = """\
<@{{ body.event.user }}> asked in Slack (channel {{ body.event.channel }}, thread \
{{ body.event.thread_ts or body.event.ts }}):

{{ body.event.text | string | truncate(4000) }}

Answer in that thread: do what is asked, and reply with what you did or found."""

_SLACK_COMMAND = """\
<@{{ body.user_id }}> ran {{ body.command }} in Slack (channel {{ body.channel_id }}):

{{ body.text | string | truncate(4000) }}

Do what is asked, and reply with what you did or found."""

_ALERT = """\
Investigate the firing alert {{ body.commonLabels.alertname or "(no alertname)" }}\
{% if body.commonLabels.severity %} (severity {{ body.commonLabels.severity }}){% endif %}\
{% if body.commonLabels.namespace %} in namespace {{ body.commonLabels.namespace }}\
{% endif %}.
{% if (body.commonAnnotations or {}).summary %}
{{ body.commonAnnotations.summary | string | truncate(4000) }}
{% endif %}
Alerts ({{ body.alerts | length }}):
{% for alert in body.alerts[:20] %}\
- {{ (alert.labels or {}) | dictsort | map("join", "=") | join(", ") }} \
since {{ alert.startsAt or "?" }}{% if (alert.annotations or {}).description %}: \
{{ alert.annotations.description | string | truncate(4000) }}{% endif %}
{% endfor %}
Find the cause from the alert's labels and what you can read of the system, say how bad \
it is, and what would fix it; change nothing without saying so."""

BUILT_IN: dict[tuple[str, str], str] = {
    ("github", "pull_request.opened"): _PULL_REQUEST,
    ("github", "pull_request.reopened"): _PULL_REQUEST,
    ("github", "pull_request.synchronize"): _PULL_REQUEST,
    ("github", "issue_comment.created"): _COMMENT,
    ("github", "pull_request_review_comment.created"): _COMMENT,
    ("github", "issues.opened"): _ISSUE,
    ("github", "issues.labeled"): _ISSUE,
    ("jira", "jira:issue_created"): _JIRA_ISSUE,
    ("jira", "jira:issue_updated"): _JIRA_ISSUE,
    ("jira", "comment_created"): _JIRA_COMMENT,
    ("slack", "app_mention"): _SLACK_MENTION,
    ("slack", "message.im"): _SLACK_MENTION,
    ("slack", "slash_command"): _SLACK_COMMAND,
    ("alertmanager", "firing"): _ALERT,
}
"""The built-in task of each (source, event)."""


def built_in(source: str, event: str) -> str | None:
    """The built-in task template of an event, or None."""
    return BUILT_IN.get((source, event))
