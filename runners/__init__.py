"""The runner registry, the runner contract (the context schema the operator writes) and
what runs inside runner Jobs (sdk/); see docs/architecture.md."""
