"""What access control costs per request, in process (create_app() + TestClient, sqlite records, memory
rate limits): one read route called with each kind of credential, auth off as the baseline. Run by hand:

    .venv/bin/python benchmarks/auth_overhead.py [--requests 300]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time

from starlette.testclient import TestClient

from bentos.api import create_app
from kiln.settings import Settings

KEY = "benchmark-admin-key-0123456789"


LOCAL = "http://localhost"  # a Host the server answers by default (TestClient's own "testserver" is not)


def measure(client: TestClient, headers: dict, requests: int) -> tuple[float, float]:
    client.get("/api/v1/rate-limit", headers=headers)  # warm up
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get("/api/v1/rate-limit", headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="kiln-auth-bench-")
    big = "100000/minute"
    open_app = create_app(Settings(home=f"{home}/open"))
    secured = create_app(Settings(home=f"{home}/secured", enable_auth=True, api_keys={"admin": KEY},
                                  rate_limit_status=big, allow_registration=True))
    rows = []
    with TestClient(open_app, base_url=LOCAL) as client:
        rows.append(("auth off, no credentials", *measure(client, {}, args.requests)))
    with TestClient(secured, base_url=LOCAL) as client:
        client.post("/auth/register", json={"username": "bench", "password": "correct horse"})
        token = client.post("/auth/login", json={"username": "bench", "password": "correct horse"}).json()
        basic = base64.b64encode(b"bench:correct horse").decode()
        rows.append(("auth on, X-API-Key", *measure(client, {"X-API-Key": KEY}, args.requests)))
        rows.append(("auth on, Bearer JWT", *measure(client, {"Authorization": f"Bearer {token['access_token']}"}, args.requests)))
        rows.append(("auth on, Basic (argon2)", *measure(client, {"Authorization": f"Basic {basic}"}, max(20, args.requests // 10))))
    print(f"{'credential':28} {'median ms':>10} {'p95 ms':>8}")
    for name, median, p95 in rows:
        print(f"{name:28} {median:10.2f} {p95:8.2f}")


if __name__ == "__main__":
    main()
