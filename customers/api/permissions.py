from rest_framework.permissions import DjangoModelPermissions


class StrictModelPermissions(DjangoModelPermissions):
    """Model permissions that also require `view_<model>` for reads (decisions 34)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class RequiredPermissions(StrictModelPermissions):
    """For APIViews without a queryset: `required_permissions = {"GET": [...], "POST": [...]}`."""

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        perms = getattr(view, "required_permissions", {}).get(request.method)
        if perms is None:
            perms = getattr(view, "required_permissions", {}).get("*", [])
        return request.user.has_perms(perms)
