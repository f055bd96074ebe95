"""Admin for the customers app, one module per area (the file passed 400 lines as a single module)."""

from django.contrib import admin

from . import customers, imports, registry  # noqa: F401

# The product's name instead of "Django administration" (could move to config/urls.py).
admin.site.site_header = "Tessera"
admin.site.site_title = "Tessera admin"
admin.site.index_title = "Customers, segments and exports"
