"""Replies to where a Session's event came from: which are owed and what they say (rules,
pure), the GitHub App token (githubapp, pure), HTTP to GitHub, Jira and Slack (client) and
the workers that post and record every attempt in history (sender)."""
