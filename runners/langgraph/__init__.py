"""The LangGraph runner: runs the graph framework.config.graph names (runners/README.md)."""
