"""The inbound webhook ingress: GitHub, Jira and Slack events become Sessions.

Pure modules decide (signatures, events, keyindex, ratelimit, errors); sessions_api.py is
the one place that calls the Kubernetes API (over common/kube); app.py is the FastAPI
adapter.
"""
