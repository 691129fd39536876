"""Settings of the test project.

The test process and the runserver subprocess both use this module.  Core
EVENTLOG_* settings are set here only when DJANGOPROJECT_EVENTLOG_PORT is given
(the runserver test), so other tests in the same process never see them.
"""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.djangoproject.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "eventlog.django.EventlogMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGOPROJECT_DB")
        or os.path.join(tempfile.gettempdir(), "eventlog-djangoproject.sqlite3"),
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# The middleware: X-Forwarded-For is believed from loopback only.
EVENTLOG_DJANGO_TRUSTED_PROXIES = ["127.0.0.1", "::1"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"events": {"class": "eventlog.EventHandler"}},
    "loggers": {"djangoproject": {"handlers": ["events"], "level": "INFO", "propagate": False}},
}

if not os.environ.get("DJANGOPROJECT_EVENTLOG_PORT"):
    # In the shared pytest process, dictConfig would close every handler other tests
    # made; the test fixture attaches the EventHandler itself.
    LOGGING_CONFIG = None
else:
    # What a user writes in settings.py: eventlog reads these when the environment does not.
    EVENTLOG_TRANSPORT = "tcp"
    EVENTLOG_HOST = "127.0.0.1"
    EVENTLOG_PORT = int(os.environ["DJANGOPROJECT_EVENTLOG_PORT"])
    EVENTLOG_LINGER_MS = 0
    EVENTLOG_SITE = "runserver-site"
