"""The fixed, documented names of the Secrets a namespace keeps its credentials in.

Fixed names (never a name a Session or a policy chooses) so RBAC can grant exactly these
through ``resourceNames`` and no tenant can point the operator or a runner at another
Secret (docs/architecture.md, invariant 7). Each lives in the Session's own namespace.
"""

from __future__ import annotations

SOURCE_CREDENTIALS_SECRET = "ambient-source-credentials"  # noqa: S105 - a name
"""How the platform talks back to where an event came from, and checks out its code:
replies to GitHub, Jira and Slack, and the runner's repository checkout."""
GITHUB_TOKEN_KEY = "github-token"  # noqa: S105 - a data key's name
"""A GitHub token (fine-grained or an installation token) with contents, issues and pull
request access; used when no GitHub App is set."""
GITHUB_APP_ID_KEY = "github-app-id"
"""A GitHub App's id; with the two keys below it is preferred over a token."""
GITHUB_APP_PRIVATE_KEY_KEY = "github-app-private-key"
"""The GitHub App's private key (PEM)."""
GITHUB_APP_INSTALLATION_KEY = "github-app-installation-id"
"""The GitHub App's installation id for this namespace's organisation or repositories."""
JIRA_BASE_URL_KEY = "jira-base-url"
"""The Jira site, e.g. https://example.atlassian.net (checked like any outbound URL)."""
JIRA_EMAIL_KEY = "jira-email"
"""The Jira account the API token belongs to."""
JIRA_API_TOKEN_KEY = "jira-api-token"  # noqa: S105 - a data key's name
"""A Jira API token."""
SLACK_BOT_TOKEN_KEY = "slack-bot-token"  # noqa: S105 - a data key's name
"""A Slack bot token (xoxb-...) with chat:write."""

MODEL_CREDENTIALS_SECRET = "ambient-model-credentials"  # noqa: S105 - a name
"""What a runner needs to reach its model: the API key and, for a gateway, its base URL.
The chart can set a cluster default the operator uses when the namespace has none."""
ANTHROPIC_API_KEY_KEY = "anthropic-api-key"
"""Passed to the runner as ANTHROPIC_API_KEY."""
ANTHROPIC_BASE_URL_KEY = "anthropic-base-url"
"""Passed to the runner as ANTHROPIC_BASE_URL (optional)."""
OPENAI_API_KEY_KEY = "openai-api-key"
"""Passed to the runner as OPENAI_API_KEY (langgraph, crewai and agno runners may use it)."""

N8N_CREDENTIALS_SECRET = "ambient-n8n-credentials"  # noqa: S105 - a name
"""How the n8n runner reaches the namespace's n8n: its base URL and a credential."""
N8N_BASE_URL_KEY = "n8n-base-url"
N8N_API_KEY_KEY = "n8n-api-key"
"""An n8n API key (for the REST API's executions) or a webhook header credential."""
N8N_WEBHOOK_TOKEN_KEY = "n8n-webhook-token"  # noqa: S105 - a data key's name
"""The value the workflow's Webhook node checks (its Header Auth credential); the header's
name is framework.config.authHeader (default X-Ambient-Token)."""
N8N_ENV = {
    N8N_BASE_URL_KEY: "N8N_BASE_URL",
    N8N_API_KEY_KEY: "N8N_API_KEY",
    N8N_WEBHOOK_TOKEN_KEY: "N8N_WEBHOOK_TOKEN",
}
"""The n8n runner's environment variable for each key of the n8n Secret (each optional)."""

WEBHOOK_SIGNING_SECRET = "ambient-webhook-signing"  # noqa: S105 - a name
"""The documented default name of a namespace's webhook signing Secret (data keys github,
jira, slack, notifications), named by NamespacePolicy spec.webhookAuth.signingSecretRef.
The chart lets the operator and the ingress read only the names in
secrets.signingSecretNames (this one by default), so a policy naming any other Secret
gets Forbidden."""

CREDENTIAL_SECRETS = (SOURCE_CREDENTIALS_SECRET, MODEL_CREDENTIALS_SECRET, N8N_CREDENTIALS_SECRET)
"""Every Secret name the platform reads besides the signing secrets; RBAC lists these."""
