"""Admin for the customers app, one module per area (the file passed 400 lines as a single module)."""

from . import customers, imports, registry  # noqa: F401
