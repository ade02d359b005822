"""The inbound webhook ingress: GitHub, Jira and Slack events become Sessions.

Pure modules decide (signatures, events, keyindex, ratelimit, errors); kube.py is the one
place that talks to the Kubernetes API; app.py is the FastAPI adapter.
"""
