"""The n8n runner: starts the workflow framework.config.workflow names (runners/README.md)."""
