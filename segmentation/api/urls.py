from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

# SimpleRouter: no format-suffix routes, so keys may contain dots (decisions 32: any character but `/`).
router = SimpleRouter()
router.register("segments", views.SegmentViewSet, basename="segment")

urlpatterns = [
    # Before the router: `preview` is a reserved key, never a segment (decisions 24).
    path("segments/preview/", views.SegmentPreviewView.as_view(), name="segment-preview"),
    *router.urls,
]
