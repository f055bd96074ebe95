from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_functions(sender, connection, **kwargs):
    """Make SQLite's LOWER() fold case the way Python does (decisions 3).

    SQLite's built-in lower() only folds ASCII; PostgreSQL (UTF-8, C.UTF-8 ctype) folds Unicode.
    Overriding the built-in keeps `Lower()` identical on both databases.
    """
    if connection.vendor != "sqlite":
        return
    from customers.normalize import sql_lower

    connection.connection.create_function("lower", 1, sql_lower, deterministic=True)


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self):
        from django.db.models.signals import post_migrate

        from customers import roles

        connection_created.connect(_sqlite_functions, dispatch_uid="tessera_sqlite_functions")
        post_migrate.connect(roles.sync_after_migrate, sender=self)
