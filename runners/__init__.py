"""The runner registry and what runs inside runner Jobs."""
