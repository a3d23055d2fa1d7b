"""The 'way out' backends for real: Kiln's records on PostgreSQL, rate limits in Redis (loopback servers)."""

import asyncio
import uuid

import pytest
from sqlalchemy import text

from kiln.access.ratelimit import RateLimiter
from kiln.access.service import AccessControl
from kiln.settings import Settings
from tests.servers import reachable


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "kiln:migrations")
    return ScriptDirectory.from_config(config).get_current_head()


REDIS = "redis://127.0.0.1:6379/0"


def test_records_on_postgres_survive_a_restart(postgres_schema, tmp_path):
    url, schema = postgres_schema
    settings = Settings(home=tmp_path, database_url=url, api_keys={"admin": "admin-secret-key-0123456789"})
    first = AccessControl(settings)
    first.start()
    first.register("pat", "correct horse", email="pat@example.com")
    _, key = first.create_key("svc", ["read", "write"])
    pair = first.login("pat", "correct horse")
    first.logout(first.authenticate(f"Bearer {pair.access_token}", None))
    first.database.dispose()

    second = AccessControl(settings)  # a restart: new engine, migrations run again (no-op)
    second.start()
    assert second.authenticate(None, key).name == "svc"
    assert second.authenticate(None, "admin-secret-key-0123456789").can("admin")
    assert second.login("pat", "correct horse").expires_in == 3600
    with pytest.raises(Exception, match="revoked"):
        second.refresh(pair.refresh_token)
    with second.database.engine.connect() as connection:
        tables = set(connection.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}).scalars())
        version = connection.execute(text("SELECT version_num FROM kiln_alembic_version")).scalar()
    assert {"users", "api_keys", "revoked_tokens", "audit_events", "downloads", "tasks", "task_workers", "events", "files",
            "kiln_alembic_version"} <= tables
    assert version == head_revision()
    second.database.dispose()


@pytest.fixture
def redis_prefix():
    if not reachable(6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    prefix = f"kiln-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_rate_limits_in_redis_are_shared_between_processes(redis_prefix):
    import redis

    settings = Settings(redis_url=REDIS, rate_limit_prefix=redis_prefix, rate_limit_generation="5/minute")
    gateway_a, gateway_b = RateLimiter(settings), RateLimiter(settings)  # as two gateway processes would

    async def burst():
        decisions = []
        for limiter in (gateway_a, gateway_b, gateway_a, gateway_b, gateway_a, gateway_b, gateway_a):
            decisions.append(await limiter.hit("generation", "key:abc"))
        usage = await gateway_b.usage("generation", "key:abc")
        other = await gateway_b.hit("generation", "key:other")
        return decisions, usage, other

    decisions, usage, other = asyncio.run(burst())
    assert gateway_a.backend == "redis"
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[-1].retry_after >= 1 and decisions[-1].limit == 5
    assert usage["used"] == 5 and usage["remaining"] == 0
    assert other.allowed  # limits are per client
    keys = list(redis.Redis.from_url(REDIS).scan_iter(f"{redis_prefix}*"))
    assert keys, "the counts live in Redis under the configured prefix"


def test_unreachable_redis_does_not_take_the_api_down():
    settings = Settings(redis_url="redis://127.0.0.1:1/0", rate_limit_prefix="kiln-test-down")
    assert asyncio.run(RateLimiter(settings).hit("status", "ip:x")) is None
