"""The attribute registry: built-ins synced after migrate, custom ones registered on sight."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from customers.attributes import builtin_attributes
from customers.models import AttributeDefinition
from customers.normalize import infer_type, validate_custom_key


def attribute_sync_builtins() -> None:
    """Create or refresh the profile and system attributes in the registry table."""
    for key, label, kind, type_, desc in builtin_attributes():
        AttributeDefinition.objects.update_or_create(
            key=key, defaults={"label": label, "kind": kind, "type": type_, "description": desc}
        )


def custom_types() -> dict[str, str]:
    """{custom key (without the custom. prefix): type} for every registered custom attribute."""
    rows = AttributeDefinition.objects.filter(kind=AttributeDefinition.Kind.CUSTOM).values_list("key", "type")
    return {key[len("custom.") :]: type_ for key, type_ in rows}


def attribute_register(*, key: str, type_: str, label: str = "", description: str = "") -> AttributeDefinition:
    """Register one custom attribute (idempotent; an existing type is kept)."""
    validate_custom_key(key)
    full = f"custom.{key}"
    try:
        with transaction.atomic():
            obj, _ = AttributeDefinition.objects.get_or_create(
                key=full,
                defaults={
                    "label": label or key.replace("_", " ").replace(".", " ").capitalize(),
                    "kind": AttributeDefinition.Kind.CUSTOM,
                    "type": type_,
                    "description": description,
                },
            )
    except IntegrityError:  # a concurrent writer registered it first
        obj = AttributeDefinition.objects.get(key=full)
    return obj


def attribute_register_values(values: dict, *, known: dict[str, str] | None = None) -> dict[str, str]:
    """Register unseen custom keys with the type inferred from their value.

    Null never registers a type (decisions 11). Returns {key: registered type} for every key
    that has a type, registered before or now.
    """
    types = dict(custom_types() if known is None else known)
    for key, value in values.items():
        if key in types:
            continue
        inferred = infer_type(value)
        if inferred is None:
            continue
        types[key] = attribute_register(key=key, type_=inferred).type
    return {k: types[k] for k in values if k in types}


def attribute_update_type(*, attribute: AttributeDefinition, type_: str) -> AttributeDefinition:
    """Correct a custom attribute's type; stored values are re-coerced in a background job."""
    if attribute.kind != AttributeDefinition.Kind.CUSTOM:
        raise ValueError("Only custom attributes can change type.")
    if attribute.type == type_:
        return attribute
    attribute.type = type_
    attribute.save(update_fields=["type", "updated_at"])
    from customers.tasks import attribute_recoerce_task

    transaction.on_commit(lambda: attribute_recoerce_task.delay(attribute.pk))
    return attribute
