from django.urls import path, re_path

from . import views

app_name = "tracking"

urlpatterns = [
    re_path(
        r"^v1/(?P<route>identify|track|page|screen|group|alias|batch|[itpsgab])$",
        views.tracking_view,
        name="call",
    ),
    path("beacon/v1/batch", views.tracking_view, {"route": "batch"}, name="beacon"),
    path("v1/m", views.metrics_view, name="metrics"),
    path("v1/projects/<str:write_key>/settings", views.settings_view, name="settings"),
    path("analytics.js/v1/<str:write_key>/analytics.min.js", views.loader_view, name="loader"),
    path("analytics-next/bundles/<str:name>", views.bundle_view, name="bundle"),
]
