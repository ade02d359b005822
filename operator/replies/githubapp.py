"""A GitHub App's JSON Web Token (RS256), from its id and private key (pure: given the time).

GitHub trades this short-lived token for an installation token
(POST /app/installations/{id}/access_tokens). PyJWT is not among the pinned dependencies;
``cryptography`` is, and an RS256 JWT is three base64url parts and one PKCS#1 v1.5 signature.
"""

from __future__ import annotations

import base64
import json

LIFETIME_SECONDS = 540  # GitHub refuses more than 10 minutes
CLOCK_SKEW_SECONDS = 60  # issued in the past, as GitHub advises, against clock drift


class AppKeyError(ValueError):
    """The private key is not an RSA key in PEM (the Secret's github-app-private-key)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def app_jwt(app_id: str, private_key_pem: bytes, now: int) -> str:
    """The App's JWT, valid from ``now`` - 60 s for 9 minutes."""
    # Imported here: cryptography holds about 9 MiB, and only namespaces that reply as a
    # GitHub App ever sign (the operator's memory at rest, docs/benchmarks.md).
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AppKeyError("github-app-private-key is not a PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AppKeyError("github-app-private-key must be an RSA key (GitHub Apps use RS256)")
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iat": now - CLOCK_SKEW_SECONDS, "exp": now + LIFETIME_SECONDS, "iss": app_id}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64url(signature)}"
