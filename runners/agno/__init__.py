"""The Agno runner: runs the agent framework.config.agent names (runners/README.md)."""
