"""Audit records: the trail (structured log), its export to the store, and the CLI."""
