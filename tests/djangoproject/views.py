"""Views that log application events and records, so tests can check their association."""

from __future__ import annotations

import contextvars
import logging
import threading

from django.contrib.auth import authenticate, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import eventlog

log = logging.getLogger("djangoproject")
hits = eventlog.Counter("djangoproject.hit", "count")


class BoomError(RuntimeError):
    """The exception boom() raises; the test checks it arrives unchanged."""


@csrf_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return HttpResponse("no", status=403)
    login(request, user)
    return HttpResponse("ok")


def user_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    eventlog.log_event(eventlog.Event("user.view", str(user_id), "user"))
    log.info("viewed user %d", user_id)
    return HttpResponse(f"user {user_id}")


async def async_view(request: HttpRequest, name: str) -> HttpResponse:
    eventlog.log_event(eventlog.Event("async.view", name, "thing"))
    log.info("async view %s", name)
    return HttpResponse(f"async {name}")


def thread_view(request: HttpRequest) -> HttpResponse:
    def work() -> None:
        eventlog.log_event(eventlog.Event("thread.work", "copied-context"))
        log.info("from a worker thread")

    ctx = contextvars.copy_context()
    worker = threading.Thread(target=ctx.run, args=(work,))
    worker.start()
    worker.join()
    return HttpResponse("thread done")


def boom(request: HttpRequest) -> HttpResponse:
    raise BoomError("the view failed")


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"received": len(request.body)})


def count(request: HttpRequest) -> HttpResponse:
    hits.inc()
    return HttpResponse("counted")
