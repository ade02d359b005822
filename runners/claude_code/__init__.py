"""The claude-code runner: Claude Code itself (the CLI claude-agent-sdk bundles) in a workspace."""
