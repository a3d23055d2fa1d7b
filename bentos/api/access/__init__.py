"""Access: users, JWT sessions and self-service keys (seeds 000 and 002), TTSKit's admin API for API keys
and the audit log (seed 003). The core is kiln/access/; the enforcement is http/access.py."""

from bentos.api.access import admin, auth
from bentos.api.access.permissions import RULES
from bentos.api.http import formats
from bentos.api.http.surface import Surface

SURFACE = Surface(
    name="access",
    routers=(auth.router, admin.router),
    error_formats={"/auth": formats.autoserve, "/users": formats.autoserve, "/api/v1/admin": formats.ttskit,
                   "/api/v1/rate-limit": formats.ttskit},
    rules=RULES,
)
