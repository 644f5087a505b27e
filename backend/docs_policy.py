"""A Content-Security-Policy for the API docs pages: they load from this service and nowhere else.

The Swagger UI and ReDoc files come with the app (fastapi-offline), but ReDoc's bundle still asks
a CDN for its sidebar logo. The policy stops that request before it leaves the browser, so the
docs work, and stay private, on a machine with no internet.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Inline scripts and styles: the pages start Swagger UI inline, and ReDoc styles itself at run time.
POLICY = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data: blob:; worker-src 'self' blob:; font-src 'self' data:"
)


class DocsPolicy:
    """Adds the policy to the answers of `paths` (the docs pages); other requests pass untouched."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"content-security-policy", POLICY)]}
            await send(message)

        await self.app(scope, receive, send_with_policy)
