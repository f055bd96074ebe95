"""Included at "api/" in config/urls.py: /api/exports/..."""

from rest_framework.routers import SimpleRouter

from .exports import ExportViewSet

router = SimpleRouter()
router.register("exports", ExportViewSet, basename="export")
urlpatterns = router.urls
