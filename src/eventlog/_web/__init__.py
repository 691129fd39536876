"""What the web integrations (Django, ASGI, Flask) share: settings, the request facts each
adapter reads, and the one place the request event is made from them."""
