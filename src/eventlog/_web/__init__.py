"""What the web integrations (Django, ASGI, Flask) share: settings and the request event."""
