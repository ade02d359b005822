"""A GitHub App's JWT: RS256 over the claims GitHub expects, verifiable with the App's
public key; a key that is not RSA PEM is refused with a clear error."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ambient.operator.replies.githubapp import AppKeyError, app_jwt


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _part(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_jwt_is_signed_rs256_with_the_claims_github_expects() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = app_jwt("12345", _pem(key), now=1_700_000_000)
    header, claims, signature = token.split(".")
    assert json.loads(_part(header)) == {"alg": "RS256", "typ": "JWT"}
    assert json.loads(_part(claims)) == {
        "iat": 1_700_000_000 - 60,
        "exp": 1_700_000_000 + 540,
        "iss": "12345",
    }
    # Raises InvalidSignature if the signature does not verify with the public key.
    key.public_key().verify(
        _part(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_a_key_that_is_not_rsa_pem_is_refused() -> None:
    with pytest.raises(AppKeyError, match="not a PEM private key"):
        app_jwt("1", b"not a key", now=0)
    with pytest.raises(AppKeyError, match="must be an RSA key"):
        app_jwt("1", _pem(ec.generate_private_key(ec.SECP256R1())), now=0)
