"""The login page: a plain server-rendered form that needs no script and no external resource."""

from __future__ import annotations

from html import escape

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{stylesheet}">
</head>
<body class="login-body">
<main class="login-panel">
<h1 class="login-site">{site}</h1>
<p class="login-subtitle">Operations control center</p>
<form method="post" action="{action}" class="login-form" autocomplete="on">
<label for="username">User name</label>
<input id="username" name="username" type="text" autocomplete="username" required
 autofocus value="{user_name}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{error}<button id="login" type="submit">Log in</button>
</form>
</main>
</body>
</html>
"""


def render_login_page(
    *, site_name: str, action: str, stylesheet: str, user_name: str = "", error: str = ""
) -> str:
    """Return the HTML of the login page; every inserted text is HTML-escaped."""
    error_html = f'<p id="login-error" class="login-error" role="alert">{escape(error)}</p>\n'
    return _TEMPLATE.format(
        title=escape(f"{site_name} — log in"),
        site=escape(site_name),
        action=escape(action),
        stylesheet=escape(stylesheet),
        user_name=escape(user_name),
        error=error_html if error else "",
    )
