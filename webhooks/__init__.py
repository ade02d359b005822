"""The admission webhook and the GitHub/Jira/Slack ingress."""
