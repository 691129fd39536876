"""Flask extension: one event per request and the request context (the ``flask`` extra).

::

    from eventlog.flask import Eventlog

    app = Flask(__name__)
    Eventlog(app)                 # or: ext = Eventlog(); ext.init_app(app)

Each request gives one ``http.<method>`` event with the same fields, levels,
request id handling and redaction as the Django middleware
(:mod:`eventlog._web.request`); its target is the URL rule (``/orders/<int:order_id>``).
Every Event and log record made while the request is served carries its
user, session digest and request id.  A failure of the extension itself is
logged once on the ``eventlog`` logger and never reaches the application.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask import session as flask_session

from eventlog._config.web_options import OPTION_NAMES
from eventlog._web.request import (
    FORM_TYPES,
    MAX_BODY_READ,
    RequestBody,
    RequestFacts,
    RequestLogger,
    RequestSettings,
    bind_request,
    context_user,
    identify,
    session_digest,
    unbind_request,
)

__all__ = ["Eventlog", "session_digest"]

_EXTENSION = "eventlog"
_G_ATTR = "_eventlog_request"

#: ``get_user()`` and ``get_session()`` are called inside the request, without arguments.
Hook = Callable[[], Any]


@dataclass
class _Request:
    wall_ns: int
    perf_ns: int
    request_id: str
    token: Any  # contextvars.Token of bind_request
    #: The user and session's binding, made once the app's before_request functions have run.
    user_token: Any = None
    status: int | None = None
    response_bytes: int | None = None


class Eventlog:
    """The Flask extension: ``Eventlog(app)``, or ``Eventlog()`` then ``init_app(app)``.

    Settings are keyword arguments or ``EVENTLOG_FLASK_<NAME>`` keys in
    ``app.config`` (the keyword wins): ``user_field``, ``trusted_proxies``,
    ``log_body``, ``max_body``, ``redact_keys``, ``request_id_header``,
    ``skip_paths``, as for Django.  The user is ``get_user()`` when given,
    otherwise Flask-Login's ``current_user`` when the app has a login manager.
    The session is ``get_session()`` when given, otherwise the ``sid`` of
    Flask-Session's session; only its digest leaves the process.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        get_user: Hook | None = None,
        get_session: Hook | None = None,
        **settings: Any,
    ) -> None:
        self.get_user = get_user
        self.get_session = get_session
        self._given = settings
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the settings and hook the request life cycle of ``app``."""
        given = {
            name: app.config[f"EVENTLOG_FLASK_{name.upper()}"]
            for name in OPTION_NAMES
            if f"EVENTLOG_FLASK_{name.upper()}" in app.config
        }
        given.update(self._given)
        settings = RequestSettings.load("flask", given, environ={}, given_by="Eventlog", use_django=False)
        app.extensions[_EXTENSION] = RequestLogger(settings, "flask extension")
        # First of the before_request functions, wherever init_app is called: one that answers
        # early (a 401) stops the others, and its request still gets its event and request id.
        app.before_request_funcs.setdefault(None, []).insert(0, self._before)
        app.after_request(self._after)
        app.teardown_request(self._teardown)
        # The user is read after every before_request function (the app's own, which may set
        # g.user or log the user in, and the blueprints'), just before the view, so that
        # get_user=lambda: g.user.name works and the view's events carry the user.  Flask has
        # no hook there; preprocess_request is the step that runs those functions.
        preprocess = app.preprocess_request

        def preprocess_then_read_user() -> Any:
            answer = preprocess()
            if answer is None:
                self._bind_user()
            return answer

        setattr(app, "preprocess_request", preprocess_then_read_user)  # noqa: B010 - an instance override

    # ------------------------------------------------------------ the request life cycle

    def _before(self) -> None:
        requests: RequestLogger = current_app.extensions[_EXTENSION]
        try:
            if requests.skipped(request.path):
                return
            header = requests.settings.request_id_header
            request_id = requests.request_id(request.headers.get(header))
            wall_ns, perf_ns = time.time_ns(), time.perf_counter_ns()
            token = bind_request(request_id=request_id)
            setattr(g, _G_ATTR, _Request(wall_ns, perf_ns, request_id, token))
        except Exception:
            requests.warn_once("begin", "a request could not be read", exc_info=True)

    def _bind_user(self) -> None:
        state = g.get(_G_ATTR)
        if not isinstance(state, _Request):
            return
        requests: RequestLogger = current_app.extensions[_EXTENSION]
        try:
            user = self._user(requests)
            session = self._session(requests)
            state.user_token = bind_request(user=user, session=session)
        except Exception:
            requests.warn_once("begin", "a request could not be read", exc_info=True)

    def _after(self, response: Response) -> Response:
        state = g.get(_G_ATTR)
        if isinstance(state, _Request):
            requests: RequestLogger = current_app.extensions[_EXTENSION]
            try:
                state.status = response.status_code
                state.response_bytes = response.content_length
                header = requests.settings.request_id_header
                if header not in response.headers:
                    response.headers[header] = state.request_id
            except Exception:
                requests.warn_once("after", "a response could not be read", exc_info=True)
        return response

    def _teardown(self, exc: BaseException | None) -> None:
        state = g.pop(_G_ATTR, None)
        if not isinstance(state, _Request):
            return
        requests: RequestLogger = current_app.extensions[_EXTENSION]
        try:
            self._finish(requests, state, exc)
        except Exception:
            requests.warn_once("finish", "a request event could not be made", exc_info=True)
        finally:
            try:
                if state.user_token is not None:
                    unbind_request(state.user_token)
                unbind_request(state.token)
            except ValueError:  # torn down in another context: it ends with that context
                pass

    # ------------------------------------------------------------ who is asking

    def _user(self, requests: RequestLogger, *, quiet: bool = False) -> str | None:
        field = requests.settings.user_field
        if field == "none":
            return None
        try:
            if self.get_user is not None:
                return identify(self.get_user(), field)
            if getattr(current_app, "login_manager", None) is not None:
                # Flask-Login is optional: the app that set a login manager has it.
                flask_login = importlib.import_module("flask_login")
                return identify(flask_login.current_user, field)
        except Exception:
            if not quiet:
                requests.warn_once("user", "the user of a request could not be read", exc_info=True)
        return None

    def _session(self, requests: RequestLogger) -> str | None:
        try:
            hook = self.get_session
            key = hook() if hook is not None else getattr(flask_session, "sid", None)
            return requests.session(None if key is None else str(key))
        except Exception:
            requests.warn_once("session", "the session could not be read", exc_info=True)
            return None

    # ------------------------------------------------------------ the request event

    def _finish(self, requests: RequestLogger, state: _Request, exc: BaseException | None) -> None:
        ended_ns = time.perf_counter_ns()
        view = current_app.view_functions.get(request.endpoint or "")
        user = session = None
        if context_user() is None:  # logged in by the view: the event names who
            # A before_request that answered early may have stopped before the app set up its
            # user (g.user): not knowing who asked is expected there, not worth a warning.
            user = self._user(requests, quiet=state.user_token is None)
            session = self._session(requests) if user is not None else None
        rule = request.url_rule
        requests.log_request(
            RequestFacts(
                method=request.method,
                path=request.path,
                route=rule.rule if rule is not None else None,
                status=state.status,
                request_id=state.request_id,
                started_ns=state.wall_ns,
                started_perf_ns=state.perf_ns,
                ended_perf_ns=ended_ns,
                client=request.remote_addr or "",
                forwarded_for=request.headers.get("X-Forwarded-For", ""),
                user_agent=request.headers.get("User-Agent"),
                referer=request.headers.get("Referer"),
                query=tuple((key, tuple(values)) for key, values in request.args.lists()),
                response_bytes=state.response_bytes,
                view=f"{view.__module__}.{view.__qualname__}" if view is not None else None,
                body=self._body(requests),
                exception=exc,
                user=user,
                session=session,
            )
        )

    def _body(self, requests: RequestLogger) -> RequestBody | None:
        if not requests.wants_body(request.method):
            return None
        content_type = (request.mimetype or "").lower()
        try:
            if content_type in FORM_TYPES:
                return RequestBody(
                    content_type,
                    form=tuple((key, value) for key, values in request.form.lists() for value in values),
                    files=tuple(
                        (name, str(upload.filename), _size(upload.stream))
                        for name, uploads in request.files.lists()
                        for upload in uploads
                    ),
                )
            if (request.content_length or 0) > MAX_BODY_READ:
                return RequestBody(content_type, request.content_length or 0, too_large=True)
            return RequestBody(content_type, data=request.get_data(cache=True))
        except Exception as exc:  # e.g. the view read the body as a stream
            return RequestBody(content_type, error=type(exc).__name__)


def _size(stream: Any) -> int:
    """The size of an uploaded file, leaving its position where it was."""
    position = stream.tell()
    try:
        return int(stream.seek(0, os.SEEK_END))
    finally:
        stream.seek(position)
