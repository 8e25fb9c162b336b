"""Who may use the HTTP endpoint's private routes: the ``[http]`` access token
(docs/security.md).

With ``token_env`` or ``token_file`` set, the dashboard (``/``, ``/static/*``, ``/ws``) and
``POST /what-if`` need either the session cookie that ``POST /login`` sets or
``Authorization: Bearer <token>``. The cookie holds a value derived from the token (an HMAC),
never the token. Without a token every request is allowed. ``/healthz``, ``/readyz`` and
``/metrics`` never need it (counters only).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from engine.credentials import read_secret
from engine.errors import ConfigError

__all__ = ["ACCESS", "COOKIE", "Access"]

COOKIE: Final = "riskd_session"
_SESSION_SALT: Final = b"riskd dashboard session v1"


@dataclass(frozen=True, slots=True)
class Access:
    """The access token, and the session cookie's value derived from it (both None: open)."""

    token: str | None
    session: str | None

    @classmethod
    def read(cls, token_env: str | None, token_file: str | None) -> Access:
        """Read the token from ``[http] token_env`` or ``token_file``, once.

        Raises:
            ConfigError: the token's variable or file cannot be read (named by its key).
        """
        try:
            token = read_secret(token_env, token_file)
        except ValueError as exc:
            key = "token_env" if token_env is not None else "token_file"
            raise ConfigError("[http]", f"{exc} - at `$.http.{key}`") from None
        if token is None:
            return cls(None, None)
        return cls(token, hmac.new(token.encode(), _SESSION_SALT, hashlib.sha256).hexdigest())

    def allowed(self, request: web.Request) -> bool:
        """Whether ``request`` carries the session cookie or the token (always, without a
        token)."""
        if self.session is None:
            return True
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.is_token(given.strip())

    def is_token(self, given: str) -> bool:
        """Whether ``given`` is the token (compared in constant time)."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


ACCESS: Final = web.AppKey("access", Access)
"""The endpoint's :class:`Access`, which every private route's handler checks."""
