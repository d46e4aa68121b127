"""Security headers on every HMI response: nothing but this server may be contacted or frame it.

The Content-Security-Policy is a second line behind serving every asset locally: even a
component that tried to load a font or script from the internet would be blocked by the browser.
Dash's renderer boots from inline scripts and plotly.js compiles some functions at run time,
hence 'unsafe-inline' and 'unsafe-eval' for scripts; everything else is limited to this origin.
Under TLS, Strict-Transport-Security tells browsers to use HTTPS only for a year (RFC 6797).
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


HSTS_MAX_AGE_S = 365 * 24 * 3600


def install_security_headers(server: Flask, *, tls: bool = False) -> None:
    """Add the security headers to every response of ``server`` (HSTS when it serves TLS)."""

    def add_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        # Not "no-referrer": with it, browsers send "Origin: null" on the HMI's own form posts,
        # which the login's origin check would then refuse.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        if tls:
            response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE_S}")
        return response

    server.after_request(add_headers)
