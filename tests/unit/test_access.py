"""Access control core on sqlite: users, JWT sessions, revocation, API keys, restarts, production secrets."""

import logging
import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from kiln.access import warn_if_exposed
from kiln.access.errors import InsecureConfiguration, Unauthorized
from kiln.access.models import AuditEvent, User
from kiln.access.service import AccessControl
from kiln.errors import BadRequest, Conflict, InvalidInput, NotFound
from kiln.settings import Settings

ADMIN_KEY = "admin-secret-key-0123456789"
USER_KEY = "user1-secret-key-0123456789"


def settings_for(home, **overrides) -> Settings:
    return Settings(home=home, api_keys={"admin": ADMIN_KEY, "user1": USER_KEY}, **overrides)


@pytest.fixture
def access(tmp_path):
    service = AccessControl(settings_for(tmp_path))
    service.start()
    yield service
    service.database.dispose()


def basic(username, password):
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_environment_keys_get_their_permissions(access):
    keys = {k.user_id: k for k in access.list_keys()}
    assert keys["admin"].permission_list == ["read", "write", "admin"]
    assert keys["user1"].permission_list == ["read", "write"]
    assert access.authenticate(None, ADMIN_KEY).can("admin")
    user1 = access.authenticate(f"Bearer {USER_KEY}", None)
    assert user1.name == "user1" and user1.can("write") and not user1.can("admin")


def test_single_api_key_is_admin(tmp_path):
    service = AccessControl(Settings(home=tmp_path, api_key="the-one-admin-key-0123456789"))
    service.start()
    principal = service.authenticate(None, "the-one-admin-key-0123456789")
    assert principal.name == "admin" and principal.can("admin")


def test_keys_are_stored_hashed_never_plain(access):
    _, generated = access.create_key("svc", ["read"])
    with access.database.session() as session:
        dump = " ".join(str(row) for row in session.execute(text("SELECT * FROM api_keys")).all())
    for key in (ADMIN_KEY, USER_KEY, generated):
        assert key not in dump
    assert access.authenticate(None, generated).permissions == ("read",)


def test_wrong_key_and_bad_schemes_are_unauthorized(access):
    for authorization, api_key in [(None, "nope-nope-nope"), ("Bearer nope-nope", None), ("Token abc", None),
                                   ("Basic !!!", None), (basic("ghost", "whatever1"), None)]:
        with pytest.raises(Unauthorized):
            access.authenticate(authorization, api_key)
    assert access.authenticate(None, None) is None


def test_register_login_and_basic(access):
    user = access.register("alice", "correct horse", email="alice@example.com", full_name="Alice")
    assert user.permission_list == ["read", "write"] and user.password_hash.startswith("$argon2")
    with pytest.raises(Conflict):
        access.register("alice", "another pass")
    with pytest.raises(InvalidInput):
        access.register("al", "correct horse")
    with pytest.raises(InvalidInput):
        access.register("bob", "short")
    with pytest.raises(InvalidInput):
        access.register("bob", "long enough", email="not-an-email")
    pair = access.login("alice", "correct horse")
    assert pair.expires_in == 3600
    assert access.authenticate(f"Bearer {pair.access_token}", None).name == "alice"
    assert access.authenticate(basic("alice", "correct horse"), None).user_id == user.id
    with pytest.raises(Unauthorized):
        access.login("alice", "wrong horse")
    with pytest.raises(Unauthorized):
        access.authenticate(basic("alice", "wrong horse"), None)


def test_refresh_and_logout_revoke_the_session(access):
    access.register("carol", "correct horse")
    pair = access.login("carol", "correct horse")
    new_access, _ = access.refresh(pair.refresh_token)
    principal = access.authenticate(f"Bearer {pair.access_token}", None)
    revoked = access.logout(principal)
    assert principal.token["jti"] in revoked and principal.token["sid"] in revoked
    for token in (pair.access_token, new_access):  # every access token of the session ends
        with pytest.raises(Unauthorized, match="revoked"):
            access.authenticate(f"Bearer {token}", None)
    with pytest.raises(Unauthorized, match="revoked"):
        access.refresh(pair.refresh_token)
    with pytest.raises(Unauthorized):  # a refresh token is not an access token
        access.authenticate(f"Bearer {access.login('carol', 'correct horse').refresh_token}", None)
    with pytest.raises(BadRequest):  # an API key has no session to end
        access.logout(access.authenticate(None, USER_KEY))


def test_access_tokens_expire(access):
    access.register("dave", "correct horse")
    access.tokens.access_ttl = timedelta(seconds=1)
    pair = access.login("dave", "correct horse")
    assert access.authenticate(f"Bearer {pair.access_token}", None).name == "dave"
    time.sleep(1.2)
    with pytest.raises(Unauthorized, match="expired"):
        access.authenticate(f"Bearer {pair.access_token}", None)
    fresh, _ = access.refresh(pair.refresh_token)  # the refresh token outlives it
    assert access.authenticate(f"Bearer {fresh}", None).name == "dave"


def test_tampered_or_foreign_tokens_fail(access, tmp_path):
    access.register("erin", "correct horse")
    token = access.login("erin", "correct horse").access_token
    header, payload, signature = token.split(".")
    with pytest.raises(Unauthorized):
        access.authenticate(f"Bearer {header}.{payload}.{signature[::-1]}", None)
    other = AccessControl(Settings(home=tmp_path / "other"))
    other.start()
    with pytest.raises(Unauthorized):  # signed with another secret
        other.authenticate(f"Bearer {token}", None)


def test_key_crud_and_user_keys(access):
    record, key = access.create_key("svc", ["read", "write"], key="a-chosen-key-123")
    assert key == "a-chosen-key-123" and record.key_hint == "a-cho..."
    with pytest.raises(Conflict):
        access.create_key("svc", ["read"])
    with pytest.raises(InvalidInput):
        access.create_key("svc2", ["root"])
    access.update_key("svc", key="a-rotated-key-456", permissions=["read"])
    with pytest.raises(Unauthorized):
        access.authenticate(None, "a-chosen-key-123")
    assert access.authenticate(None, "a-rotated-key-456").permissions == ("read",)
    access.delete_key("svc")
    with pytest.raises(NotFound):
        access.delete_key("svc")
    user = access.register("frank", "correct horse")
    first, first_key = access.generate_user_key(user)
    second, second_key = access.generate_user_key(user)  # replaces the first
    assert first_key != second_key
    with pytest.raises(Unauthorized):
        access.authenticate(None, first_key)
    principal = access.authenticate(None, second_key)
    assert principal.user_id == user.id and principal.permissions == ("read", "write")


def test_restart_keeps_users_keys_and_sessions(tmp_path):
    first = AccessControl(settings_for(tmp_path))
    first.start()
    first.register("gina", "correct horse")
    _, key = first.create_key("svc", ["read"])
    token = first.login("gina", "correct horse").access_token
    first.database.dispose()

    second = AccessControl(settings_for(tmp_path))  # a new engine on the same database and secret file
    second.start()
    assert second.login("gina", "correct horse")
    assert second.authenticate(None, key).name == "svc"
    assert second.authenticate(f"Bearer {token}", None).name == "gina"
    # auth is off in these settings: the local admin key (KILN_HOME/admin.key) is kept across restarts too
    assert {k.user_id for k in second.list_keys()} == {"admin", "user1", "svc", "local-admin", "kiln-worker"}
    assert second.authenticate(None, (tmp_path / "admin.key").read_text().strip()).permissions == ("read", "write", "admin")


def test_secret_file_is_private_and_production_refuses_defaults(tmp_path):
    AccessControl(Settings(home=tmp_path)).start()
    assert oct(os.stat(tmp_path / "jwt_secret").st_mode & 0o777) == "0o600"
    for secret in (None, "secret", "short-but-not-default"):
        with pytest.raises(InsecureConfiguration):
            AccessControl(Settings(home=tmp_path / "prod", environment="production", jwt_secret=secret))
    AccessControl(Settings(home=tmp_path / "prod", environment="production", jwt_secret="x" * 48)).start()
    assert not (tmp_path / "prod" / "jwt_secret").exists()


def test_admin_user_from_environment(tmp_path):
    service = AccessControl(Settings(home=tmp_path, admin_password="admin-password-1"))
    service.start()
    principal = service.authenticate(basic("admin", "admin-password-1"), None)
    assert principal.can("admin")
    with service.database.session() as session:
        assert session.scalar(select(User.permissions).where(User.username == "admin")) == "read,write,admin"


def test_audit_events_are_recorded(access):
    access.audit("login", "failure", "user:x", None, "127.0.0.1", "rid-1")
    with access.database.session() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.request_id == "rid-1"))
    assert event.event == "login" and event.outcome == "failure"


def test_warns_loudly_when_exposed_without_auth(caplog):
    caplog.set_level(logging.WARNING, "kiln.access")
    assert warn_if_exposed(Settings(), "0.0.0.0")
    assert "authentication OFF" in caplog.text
    assert not warn_if_exposed(Settings(), "127.0.0.1")
    assert not warn_if_exposed(Settings(), "::1")
    assert not warn_if_exposed(Settings(enable_auth=True), "0.0.0.0")


def test_verified_basic_credentials_are_remembered_until_the_password_changes(access):
    user = access.register("hank", "correct horse")
    verify, verified = access.passwords.verify, []

    def counted_verify(*args, **kwargs):  # the real argon2 verification, counted (not timed: timing is flaky)
        verified.append(1)
        return verify(*args, **kwargs)

    access.passwords.verify = counted_verify
    access.authenticate(basic("hank", "correct horse"), None)
    assert access.authenticate(basic("hank", "correct horse"), None).user_id == user.id
    assert len(verified) == 1  # no second argon2 verification
    assert all("correct horse" not in key for key in access._basic_seen)
    access.update_user(user.id, password="a new password")
    with pytest.raises(Unauthorized):
        access.authenticate(basic("hank", "correct horse"), None)
    assert access.authenticate(basic("hank", "a new password"), None).user_id == user.id
