from django.urls import path

from .views import DecideView

urlpatterns = [path("placements/<slug:key>/decide/", DecideView.as_view(), name="placement-decide")]
