"""JWTs (PyJWT): short-lived access tokens and longer refresh tokens, each with its own jti.

An access token also carries ``sid``, the jti of the refresh token (the session) it came from, so
logging out (revoking the session) ends every access token of that session too.
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt

from kiln.access.errors import InsecureConfiguration, Unauthorized
from kiln.settings import Settings

# Values seen in sample configs; refused in production like an unset secret.
WEAK_SECRETS = {"secret", "changeme", "change-me", "your-secret-key", "jwt-secret", "default", "kiln", "dev"}
MIN_PRODUCTION_SECRET_LENGTH = 32
SECRET_FILE = "jwt_secret"


def resolve_secret(settings: Settings) -> str:
    """KILN_JWT_SECRET; else (outside production) a random secret created once under KILN_HOME with mode 0600."""
    refuse_insecure_secret(settings)
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if configured:
        return configured
    return persisted_secret(settings.home_dir / SECRET_FILE)


def refuse_insecure_secret(settings: Settings) -> None:
    """InsecureConfiguration in production without a strong KILN_JWT_SECRET."""
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if settings.environment == "production":
        if not configured:
            raise InsecureConfiguration("KILN_ENVIRONMENT=production needs KILN_JWT_SECRET (refusing to start without it)")
        if configured.lower() in WEAK_SECRETS or len(configured) < MIN_PRODUCTION_SECRET_LENGTH:
            raise InsecureConfiguration(
                f"KILN_JWT_SECRET is a default or shorter than {MIN_PRODUCTION_SECRET_LENGTH} characters: "
                "refusing to start in production (generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )


def persisted_secret(path: Path, generate=lambda: secrets.token_urlsafe(48)) -> str:
    """The secret stored in ``path`` (mode 0600), written with a new value by the first process that asks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: of several starting processes exactly one writes the secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if value:
            return value
        raise InsecureConfiguration(f"{path} is empty: delete it to generate a new one") from None
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenIssuer:
    def __init__(self, secret: str, algorithm: str, access_minutes: int, refresh_days: int):
        self._secret = secret
        self.algorithm = algorithm
        self.access_ttl = timedelta(minutes=access_minutes)
        self.refresh_ttl = timedelta(days=refresh_days)

    def _encode(self, claims: dict[str, Any], ttl: timedelta) -> str:
        now = datetime.now(timezone.utc)
        claims = {**claims, "iat": now, "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._secret, algorithm=self.algorithm)

    def access(self, user_id: str, username: str, session: str) -> str:
        return self._encode({"sub": user_id, "username": username, "type": "access", "sid": session}, self.access_ttl)

    def pair(self, user_id: str, username: str) -> TokenPair:
        refresh = self._encode({"sub": user_id, "username": username, "type": "refresh"}, self.refresh_ttl)
        session = self.decode(refresh, "refresh")["jti"]
        return TokenPair(self.access(user_id, username, session), refresh, int(self.access_ttl.total_seconds()))

    def decode(self, token: str, expected_type: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[self.algorithm],
                options={"require": ["exp", "iat", "sub", "jti", "type"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid token") from None
        if claims.get("type") != expected_type:
            raise Unauthorized(f"Expected a {expected_type} token")
        return claims


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("ey")
