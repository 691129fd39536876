"""A minimal Django project for the middleware tests (test client and a real runserver)."""
