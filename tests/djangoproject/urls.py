from __future__ import annotations

from django.urls import path

from tests.djangoproject import views

urlpatterns = [
    path("login/", views.login_view),
    path("users/<int:user_id>/", views.user_detail, name="user-detail"),
    path("async/<slug:name>/", views.async_view),
    path("thread/", views.thread_view),
    path("boom/", views.boom),
    path("echo/", views.echo),
    path("count/", views.count),
]
