"""The admission webhook (admission/), the GitHub/Jira/Slack/alert ingress (ingress/) and
the admins' commands (cli/); see docs/architecture.md for the path of a delivery."""
