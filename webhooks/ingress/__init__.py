"""The inbound webhook ingress: GitHub, Jira, Slack, Alertmanager and generic (Standard
Webhooks) events become Sessions.

Decides (pure): signatures, events, keyindex, ratelimit, errors, settings, rules (the
pipeline's steps), replay, delivery_records, sources/ (per-source parsing). Talks:
sessions_api.py (the Kubernetes API, over common/kube), pipeline.py (verify, decide,
offload, create, through what it is given), handler.py (one delivery without HTTP),
routes.py (the FastAPI routes), delivery_log.py (the delivery log's exports and kept
requests). app.py composes them; __main__.py serves them.
"""
