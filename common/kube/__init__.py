"""The one Kubernetes access layer: every module that talks to the API server goes through
here (besides kopf, which keeps its own connection for its watches).

- ``config``: where the API server is and how to log in, read when called (in-cluster
  service account, else the kubeconfig: certificates, tokens, exec plugins).
- ``errors``: the one error taxonomy every client raises (NotFoundError, ConflictError,
  InvalidError, RefusedError; UnavailableError to retry).
- ``client``: the synchronous flavour (JSON over urllib3): the operator, the webhooks'
  NamespacePolicy watch, the CLIs.
- ``aio``: the asynchronous flavour (JSON over aiohttp), for per-request calls on an event
  loop (the ingress).

The runners keep their own small client on the standard library
(``runners/sdk/status_client.py``): runner images do not ship these libraries, and
``runners`` sits below ``common`` in the layers, so it may not import this package.
"""
