"""Roles (auth groups) created after migrations, once permissions exist (decisions 34)."""

from django.contrib.auth.models import Group, Permission

ROLE_MODELS = {
    "Marketer": {
        "full": [
            ("customers", "customer"),
            ("customers", "tag"),
            ("segmentation", "*"),
            ("personalization", "*"),
        ],
        "view": [("customers", "*"), ("django_celery_beat", "*")],
    },
    "Analyst": {"full": [], "view": [("customers", "*"), ("segmentation", "*"), ("personalization", "*")]},
    "Developer": {
        "full": [("customers", "source"), ("authtoken", "token"), ("authtoken", "tokenproxy")],
        "view": [("customers", "*"), ("segmentation", "*"), ("personalization", "*")],
    },
}


def _perms(app_label: str, model: str, view_only: bool):
    qs = Permission.objects.filter(content_type__app_label=app_label)
    if model != "*":
        qs = qs.filter(content_type__model=model)
    if view_only:
        qs = qs.filter(codename__startswith="view_")
    return list(qs)


def roles_sync() -> None:
    for role, spec in ROLE_MODELS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for app_label, model in spec["full"]:
            perms += _perms(app_label, model, view_only=False)
        for app_label, model in spec["view"]:
            perms += _perms(app_label, model, view_only=True)
        group.permissions.set(perms)


def sync_after_migrate(sender, **kwargs):
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    from customers.services.attributes import attribute_sync_builtins

    # post_migrate reaches apps in INSTALLED_APPS order, so segmentation's permissions do not
    # exist yet when this (customers) handler runs; create them all first (idempotent).
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    roles_sync()
    attribute_sync_builtins()
