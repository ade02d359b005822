"""Notifications: which history entries notify whom (rules, pure), the HTTPS sender and
the outbox that retries (I/O)."""
