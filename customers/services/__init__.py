"""Writes for the customers app. Import from the submodules or from here."""

from .attributes import attribute_register_values, attribute_sync_builtins, attribute_update_type
from .profiles import (
    customer_apply_values,
    customer_create,
    customer_erase,
    customer_set_tags,
    customer_update,
    tags_get_or_create,
)

__all__ = [
    "attribute_register_values",
    "attribute_sync_builtins",
    "attribute_update_type",
    "customer_apply_values",
    "customer_create",
    "customer_erase",
    "customer_set_tags",
    "customer_update",
    "tags_get_or_create",
]
