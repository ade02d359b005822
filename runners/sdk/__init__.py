"""The runner library: what a runner image uses to follow the runner contract (README)."""
