"""The access surface's lines of the permission table: users and sessions (seeds 000 and 002) and
TTSKit's admin API (seed 003). Admin routes never answer an anonymous caller, auth on or off."""

from bentos.api.http.permissions import Access, Rule, Rules, admin, authenticated, public, read

RULES: Rules = {
    # users and sessions (auth.py)
    "POST /auth/register": public("auth"),
    "POST /users/register": public("auth"),
    "POST /auth/login": public(),  # not counted per IP: failures lock (IP, account) instead (auth.py)
    "POST /auth/refresh": public("auth"),
    "POST /auth/logout": authenticated(),
    "GET /auth/profile": authenticated(),
    "GET /users/me": authenticated(),
    "PUT /users/me": authenticated(),
    "POST /auth/generate-key": authenticated(),
    # TTSKit's admin API and rate limits (admin.py)
    "GET /api/v1/admin/api-keys": admin(),
    "POST /api/v1/admin/api-keys": admin(),
    "PUT /api/v1/admin/api-keys/{user_id}": admin(),
    "DELETE /api/v1/admin/api-keys/{user_id}": admin(),
    "GET /api/v1/admin/users/me": Rule(Access.WRITE, "status"),  # seed 003: "write permission"
    "GET /api/v1/admin/audit": admin(),
    "GET /api/v1/rate-limit": read(),
}
