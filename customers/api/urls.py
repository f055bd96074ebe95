from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

# SimpleRouter: no format-suffix routes, so lookups may contain dots (decisions 32: any character but `/`).
router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
router.register(r"customers/(?P<external_id>[^/]+)/events", views.CustomerEventViewSet, basename="customer-event")
router.register("events", views.EventViewSet, basename="event")
router.register("attributes", views.AttributeViewSet, basename="attribute")
router.register("tags", views.TagViewSet, basename="tag")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    re_path(
        r"^customers/(?P<external_id>[^/]+)/segments/$", views.CustomerSegmentsView.as_view(), name="customer-segments"
    ),
    path("imports/", views.ImportView.as_view(), name="import"),
    *router.urls,
    # Last: anything else under /api/ ending in a slash (so APPEND_SLASH still redirects).
    re_path(r"^([\s\S]*/)?$", views.api_not_found),
]
