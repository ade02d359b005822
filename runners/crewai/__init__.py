"""The CrewAI runner: runs the crew framework.config.crew names (runners/README.md)."""
