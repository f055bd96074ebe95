from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/", include("segmentation.api.export_urls")),
    path("api/", include("segmentation.api.urls")),
    path("api/", include("personalization.api.urls")),
    # Last under api/: it ends with the catch-all that answers unknown /api/ paths with a JSON 404.
    path("api/", include("customers.api.urls")),
    path("", include("customers.tracking.urls")),
]
