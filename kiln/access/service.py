"""Access control: users (argon2 passwords), JWT sessions, hashed API keys with read/write/admin, and the
audit log. Plain Python on Kiln's records database; the HTTP layer lives in bentos/api."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from kiln.access.errors import Forbidden, Unauthorized
from kiln.access.models import (
    PERMISSIONS,
    ApiKey,
    AuditEvent,
    RevokedToken,
    User,
    join_permissions,
    utcnow,
)
from kiln.access.tokens import TokenIssuer, TokenPair, looks_like_jwt, persisted_secret, resolve_secret
from kiln.db import Database
from kiln.errors import BadRequest, Conflict, InvalidInput, NotFound
from kiln.settings import Settings

log = logging.getLogger("kiln.access")
audit_log = logging.getLogger("kiln.audit")

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
KEY_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
MIN_KEY = 8
LEVELS = {"read": 1, "write": 2, "admin": 3}
LAST_USED_EVERY = timedelta(minutes=1)  # bound the writes a busy key causes
BASIC_REMEMBER_SECONDS = 60
BASIC_REMEMBERED_MAX = 1024
LOCAL_ADMIN_KEY_ID = "local-admin"
LOCAL_ADMIN_KEY_FILE = "admin.key"
LOCAL_WORKER_KEY_ID = "kiln-worker"
LOCAL_WORKER_KEY_FILE = "worker.key"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (JWT or Basic) or an API key."""

    kind: str  # "user" | "api_key"
    name: str  # username, or the key's user id
    permissions: tuple[str, ...]
    user_id: str | None = None  # users.id
    key_id: str | None = None
    key_hint: str | None = None
    token: dict[str, Any] = field(default_factory=dict)  # access-token claims when the credential is a JWT

    def can(self, permission: str) -> bool:
        """Permissions are levels: admin includes write, write includes read."""
        return max((LEVELS[p] for p in self.permissions if p in LEVELS), default=0) >= LEVELS[permission]

    @property
    def rate_identity(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"user:{self.user_id}"


def hash_key(key: str) -> str:
    # Keys are looked up by digest; a fast hash is right for high-entropy keys and lets the lookup use an index.
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    return key[: min(8, len(key) // 3)] + "..."


def check_permissions(permissions: list[str]) -> str:
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown or not permissions:
        raise InvalidInput("permissions", f"must be a non-empty subset of {list(PERMISSIONS)}; got {permissions}")
    return join_permissions(permissions)


class AccessControl:
    def __init__(self, settings: Settings, database: Database | None = None):
        self.settings = settings
        self.database = database or Database(settings.records_database_url)
        if settings.environment == "production":
            resolve_secret(settings)  # refuse to start now, not at the first login
        from pwdlib import PasswordHash

        self.passwords = PasswordHash.recommended()
        self._dummy_hash: str | None = None
        self._tokens: TokenIssuer | None = None
        self._start_lock = threading.Lock()
        self._last_used: dict[str, datetime] = {}
        self._basic_pepper = secrets.token_bytes(32)
        self._basic_seen: dict[str, tuple[str, str, float]] = {}

    # --- start ---

    @property
    def ready(self) -> bool:
        return self._tokens is not None

    def start(self) -> None:
        """Migrate the database, load the JWT secret, and apply the keys and admin user from the environment."""
        with self._start_lock:
            if self._tokens is not None:
                return
            self.database.migrate()
            s = self.settings
            self._tokens = TokenIssuer(resolve_secret(s), s.jwt_algorithm, s.access_token_minutes, s.refresh_token_days)
            self._bootstrap()

    @property
    def tokens(self) -> TokenIssuer:
        if self._tokens is None:
            self.start()
        return self._tokens

    def _bootstrap(self) -> None:
        s = self.settings
        keys = {user_id: value.get_secret_value() for user_id, value in s.api_keys.items()}
        if s.api_key:
            keys.setdefault("default" if "admin" in keys else "admin", s.api_key.get_secret_value())
        for user_id, key in keys.items():
            permissions = list(PERMISSIONS) if user_id in ("admin", "default") else ["read", "write"]
            if len(key) < 16:
                log.warning("API key for %r from the environment is shorter than 16 characters", user_id)
            self._upsert_env_key(user_id, key, permissions)
        if s.admin_password:
            self._ensure_admin(s.admin_username, s.admin_password.get_secret_value())
        if not s.enable_auth:
            self._ensure_local_admin_key()
        self._ensure_local_key(LOCAL_WORKER_KEY_ID, ["read", "write"], self.settings.home_dir / LOCAL_WORKER_KEY_FILE)
        with self.database.session() as session:
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))

    def _upsert_env_key(self, user_id: str, key: str, permissions: list[str], source: str = "env") -> None:
        with self.database.session() as session:
            record = session.scalar(select(ApiKey).where(ApiKey.user_id == user_id))
            if record is None:
                session.add(ApiKey(user_id=user_id, key_hash=hash_key(key), key_hint=key_hint(key),
                                   permissions=join_permissions(permissions), source=source))
            elif record.key_hash != hash_key(key):  # the environment (or the key file) is the source of truth
                record.key_hash, record.key_hint, record.source = hash_key(key), key_hint(key), source
                record.permissions = join_permissions(permissions)

    @property
    def local_admin_key_file(self) -> Path:
        return self.settings.home_dir / LOCAL_ADMIN_KEY_FILE

    def _ensure_local_admin_key(self) -> None:
        """With auth off every route is open but the admin ones, which still need an admin credential: Kiln
        keeps one key for the local user in KILN_HOME/admin.key (mode 0600, like Jupyter's token), hashed in
        the database. ``kiln serve`` and ``kiln up`` say where it is."""
        self._ensure_local_key(LOCAL_ADMIN_KEY_ID, list(PERMISSIONS), self.local_admin_key_file)

    def _ensure_local_key(self, key_id: str, permissions: list[str], path: Path) -> None:
        """A key kept in a 0600 file of KILN_HOME, stored hashed: the local admin's, and the one this
        machine's task workers call the API with (``worker.key``, read and write)."""
        key = persisted_secret(path, lambda: "kiln_" + secrets.token_urlsafe(32))
        try:
            self._upsert_env_key(key_id, key, permissions, source="local")
        except IntegrityError:  # another process of this server stored it at the same moment
            pass

    def _ensure_admin(self, username: str, password: str) -> None:
        with self.database.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                session.add(User(username=username, password_hash=self.passwords.hash(password),
                                 permissions=join_permissions(PERMISSIONS), is_active=True))
            elif not self.passwords.verify(password, user.password_hash):
                user.password_hash = self.passwords.hash(password)
            if user is not None:
                user.permissions = join_permissions(PERMISSIONS)

    # --- audit ---

    def audit(self, event: str, outcome: str, actor: str | None = None, target: str | None = None,
              client_ip: str | None = None, request_id: str | None = None, **details: Any) -> None:
        audit_log.info("%s %s actor=%s target=%s ip=%s request_id=%s", event, outcome, actor, target, client_ip, request_id)
        try:
            with self.database.session() as session:
                session.add(AuditEvent(event=event, outcome=outcome, actor=actor, target=target,
                                       client_ip=client_ip, request_id=request_id, details=details or None))
        except Exception:  # noqa: BLE001 - the audit trail failing must be loud, not fail the request
            log.exception("Could not write audit event %s", event)

    def audit_events(self, limit: int = 100) -> list[AuditEvent]:
        with self.database.session() as session:
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))

    # --- users ---

    def register(self, username: str, password: str, email: str | None = None, full_name: str | None = None,
                 permissions: list[str] | None = None) -> User:
        if not USERNAME.match(username or ""):
            raise InvalidInput("username", "3-64 characters: letters, digits and _ . @ -")
        if len(password or "") < MIN_PASSWORD:
            raise InvalidInput("password", f"must have at least {MIN_PASSWORD} characters")
        if email is not None and not EMAIL.match(email):
            raise InvalidInput("email", "is not an email address")
        perms = check_permissions(permissions or self.settings.registration_permissions)
        try:
            with self.database.session() as session:
                user = User(username=username, email=email, full_name=full_name,
                            password_hash=self.passwords.hash(password), permissions=perms, is_active=True)
                session.add(user)
                session.flush()
        except IntegrityError:
            raise Conflict(f"User '{username}' or that email already exists", {"username": username}) from None
        return user

    def list_users(self) -> list[User]:
        with self.database.session() as session:
            return list(session.scalars(select(User).order_by(User.username)))

    def revoke_user(self, username: str) -> tuple[User, int]:
        """Deactivate ``username``: its tokens and Basic credentials stop working at once, and the API keys
        it generated are deleted. Returns the user and the number of keys deleted."""
        with self.database.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"No user '{username}'", {"username": username})
            user.is_active = False
            deleted = session.execute(delete(ApiKey).where(ApiKey.owner_id == user.id)).rowcount
        self._basic_seen.clear()  # remembered Basic credentials must not outlive the account
        return user, deleted

    def get_user(self, user_id: str) -> User:
        with self.database.session() as session:
            user = session.get(User, user_id)
        if user is None or not user.is_active:
            raise Unauthorized("User no longer exists or is inactive")
        return user

    def update_user(self, user_id: str, email: str | None = None, full_name: str | None = None,
                    password: str | None = None) -> User:
        if email is not None and not EMAIL.match(email):
            raise InvalidInput("email", "is not an email address")
        if password is not None and len(password) < MIN_PASSWORD:
            raise InvalidInput("password", f"must have at least {MIN_PASSWORD} characters")
        try:
            with self.database.session() as session:
                user = session.get(User, user_id)
                if user is None:
                    raise NotFound("User not found")
                if email is not None:
                    user.email = email
                if full_name is not None:
                    user.full_name = full_name
                if password is not None:
                    user.password_hash = self.passwords.hash(password)
                session.flush()
        except IntegrityError:
            raise Conflict("That email is already in use", {"email": email}) from None
        return user

    def check_password(self, username: str, password: str) -> User | None:
        with self.database.session() as session:
            user = session.scalar(select(User).where(User.username == username))
        if user is None:  # the same argon2 work as for a real user, so timing does not reveal usernames
            self._dummy_hash = self._dummy_hash or self.passwords.hash(secrets.token_urlsafe(16))
            self.passwords.verify(password, self._dummy_hash)
            return None
        if not self.passwords.verify(password, user.password_hash) or not user.is_active:
            return None
        return user

    # --- sessions (JWT) ---

    def login(self, username: str, password: str) -> TokenPair:
        user = self.check_password(username, password)
        if user is None:
            raise Unauthorized("Incorrect username or password")
        return self.tokens.pair(user.id, user.username)

    def refresh(self, refresh_token: str) -> tuple[str, int]:
        claims = self.tokens.decode(refresh_token, "refresh")
        self._check_not_revoked(claims["jti"])
        user = self.get_user(claims["sub"])
        access = self.tokens.access(user.id, user.username, session=claims["jti"])
        return access, int(self.tokens.access_ttl.total_seconds())

    def logout(self, principal: Principal | None, refresh_token: str | None = None) -> list[str]:
        """Revoke the caller's access token and its session (refresh token), and ``refresh_token`` if given."""
        revoke: dict[str, datetime] = {}
        if principal is not None and principal.token:
            expires = datetime.fromtimestamp(principal.token["exp"], timezone.utc)
            revoke[principal.token["jti"]] = expires
            if principal.token.get("sid"):
                revoke[principal.token["sid"]] = expires + self.tokens.refresh_ttl
        if refresh_token:
            claims = self.tokens.decode(refresh_token, "refresh")
            if principal is not None and principal.user_id and claims["sub"] != principal.user_id:
                raise Forbidden("That refresh token belongs to another user")
            revoke[claims["jti"]] = datetime.fromtimestamp(claims["exp"], timezone.utc)
        if not revoke:  # e.g. an API key or Basic credential: valid, but there is no session to end
            raise BadRequest("Nothing to log out: send a bearer access token (JWT) or a refresh_token")
        with self.database.session() as session:
            for jti, expires in revoke.items():
                session.merge(RevokedToken(jti=jti, expires_at=expires))
        return sorted(revoke)

    def _check_not_revoked(self, *jtis: str | None) -> None:
        wanted = [j for j in jtis if j]
        with self.database.session() as session:
            if session.scalar(select(RevokedToken.jti).where(RevokedToken.jti.in_(wanted)).limit(1)):
                raise Unauthorized("Token has been revoked")

    # --- API keys ---

    def list_keys(self) -> list[ApiKey]:
        with self.database.session() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.user_id)))

    def get_key(self, user_id: str) -> ApiKey:
        with self.database.session() as session:
            record = session.scalar(select(ApiKey).where(ApiKey.user_id == user_id))
        if record is None:
            raise NotFound(f"No API key for user '{user_id}'", {"user_id": user_id})
        return record

    def create_key(self, user_id: str, permissions: list[str], key: str | None = None,
                   owner_id: str | None = None, source: str = "admin") -> tuple[ApiKey, str]:
        """Store a key (generated when ``key`` is None); the plain key is returned once, never stored."""
        if not KEY_ID.match(user_id or ""):
            raise InvalidInput("user_id", "1-64 characters: letters, digits and _ . @ -")
        key = key or "kiln_" + secrets.token_urlsafe(32)
        if len(key) < MIN_KEY:
            raise InvalidInput("api_key", f"must have at least {MIN_KEY} characters")
        perms = check_permissions(permissions)
        try:
            with self.database.session() as session:
                record = ApiKey(user_id=user_id, key_hash=hash_key(key), key_hint=key_hint(key),
                                permissions=perms, owner_id=owner_id, source=source)
                session.add(record)
                session.flush()
        except IntegrityError:
            raise Conflict(f"An API key for user '{user_id}' (or that key) already exists", {"user_id": user_id}) from None
        return record, key

    def update_key(self, user_id: str, key: str | None = None, permissions: list[str] | None = None) -> ApiKey:
        if key is not None and len(key) < MIN_KEY:
            raise InvalidInput("api_key", f"must have at least {MIN_KEY} characters")
        perms = check_permissions(permissions) if permissions is not None else None
        try:
            with self.database.session() as session:
                record = session.scalar(select(ApiKey).where(ApiKey.user_id == user_id))
                if record is None:
                    raise NotFound(f"No API key for user '{user_id}'", {"user_id": user_id})
                if key is not None:
                    record.key_hash, record.key_hint = hash_key(key), key_hint(key)
                if perms is not None:
                    record.permissions = perms
                session.flush()
        except IntegrityError:
            raise Conflict("That API key is already in use") from None
        return record

    def delete_key(self, user_id: str) -> None:
        with self.database.session() as session:
            if session.execute(delete(ApiKey).where(ApiKey.user_id == user_id)).rowcount == 0:
                raise NotFound(f"No API key for user '{user_id}'", {"user_id": user_id})

    def generate_user_key(self, user: User) -> tuple[ApiKey, str]:
        """A new key for ``user`` with the user's permissions; it replaces the user's previous key."""
        with self.database.session() as session:
            existing = session.scalar(select(ApiKey).where(ApiKey.user_id == user.username))
            if existing is not None and existing.owner_id != user.id:
                raise Conflict(f"The key id '{user.username}' belongs to another key; ask an admin", {"user_id": user.username})
            if existing is not None:
                session.delete(existing)
        return self.create_key(user.username, user.permission_list, owner_id=user.id, source="user")

    # --- credentials ---

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal | None:
        """The principal behind the request's credentials; None if it sent none; Unauthorized if they are bad,
        or if X-API-Key and Authorization are both sent and do not name the same principal (ambiguous)."""
        if api_key and authorization:
            by_key, by_authorization = self._by_key(api_key), self.authenticate(authorization, None)
            if (by_key.kind, by_key.name, by_key.key_id) != (by_authorization.kind, by_authorization.name,
                                                            by_authorization.key_id):
                raise Unauthorized("Conflicting credentials: X-API-Key and Authorization name different callers; "
                                   "send one")
            return by_key
        if api_key:
            return self._by_key(api_key)
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and value:
            return self._by_token(value) if looks_like_jwt(value) else self._by_key(value)
        if scheme == "basic" and value:
            user = self._by_basic(value)
            return Principal("user", user.username, tuple(user.permission_list), user_id=user.id)
        raise Unauthorized("Unsupported Authorization scheme: use Bearer, Basic or X-API-Key")

    def _by_basic(self, value: str) -> User:
        """Basic credentials cost an argon2 verification (about 0.1 s), so a verified one is remembered for
        a minute, keyed by a keyed hash (never the password) and tied to the user's current password hash."""
        digest = hmac.new(self._basic_pepper, value.encode(), hashlib.sha256).hexdigest()
        remembered = self._basic_seen.get(digest)
        if remembered and remembered[2] > time.monotonic():
            with self.database.session() as session:
                user = session.get(User, remembered[0])
            if user is not None and user.is_active and user.password_hash == remembered[1]:
                return user
        try:
            username, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Malformed Basic credentials") from None
        user = self.check_password(username, password) if sep else None
        if user is None:
            raise Unauthorized("Incorrect username or password")
        if len(self._basic_seen) >= BASIC_REMEMBERED_MAX:
            self._basic_seen.clear()
        self._basic_seen[digest] = (user.id, user.password_hash, time.monotonic() + BASIC_REMEMBER_SECONDS)
        return user

    def _by_token(self, token: str) -> Principal:
        claims = self.tokens.decode(token, "access")
        wanted = [jti for jti in (claims["jti"], claims.get("sid")) if jti]
        with self.database.session() as session:  # one round trip: revocation and the user
            revoked = session.scalar(select(RevokedToken.jti).where(RevokedToken.jti.in_(wanted)).limit(1))
            user = session.get(User, claims["sub"])
        if revoked:
            raise Unauthorized("Token has been revoked")
        if user is None or not user.is_active:
            raise Unauthorized("User no longer exists or is inactive")
        return Principal("user", user.username, tuple(user.permission_list), user_id=user.id, token=claims)

    def _by_key(self, key: str) -> Principal:
        digest = hash_key(key)
        with self.database.session() as session:
            record = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
            if record is None or not hmac.compare_digest(record.key_hash, digest):
                raise Unauthorized("Invalid API key")
            now = utcnow()
            if now - self._last_used.get(record.id, datetime.min.replace(tzinfo=timezone.utc)) > LAST_USED_EVERY:
                record.last_used_at = now
                self._last_used[record.id] = now
            return Principal("api_key", record.user_id, tuple(record.permission_list), user_id=record.owner_id,
                             key_id=record.id, key_hint=record.key_hint)
