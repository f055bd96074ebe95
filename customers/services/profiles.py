"""Writes to customer profiles: create, update, tag, erase."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from customers.models import AuditEntry, Customer, Tag
from customers.normalize import (
    NormalizationError,
    coerce,
    normalize_country,
    normalize_email,
    normalize_gender,
    normalize_text,
    parse_date,
    validate_custom_key,
)

from .attributes import attribute_register_values

PROFILE_NORMALIZERS = {
    "email": normalize_email,
    "phone": normalize_text,
    "first_name": normalize_text,
    "last_name": normalize_text,
    "gender": normalize_gender,
    "birth_date": parse_date,
    "country": normalize_country,
    "city": normalize_text,
    "language": normalize_text,
    "source": normalize_text,
}
PROFILE_FIELDS = tuple(PROFILE_NORMALIZERS)


class ProfileValueError(ValueError):
    """Raised in strict mode; `errors` maps attribute key to a sentence."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def normalize_values(
    *, profile: dict, custom: dict, strict: bool, types: dict[str, str] | None = None
) -> tuple[dict, dict, dict[str, str]]:
    """Normalise profile and custom values; returns (profile, custom, problems).

    In strict mode (CSV, REST) any problem raises ProfileValueError; otherwise (tracking) the
    offending value is dropped and reported as a warning. Unseen custom keys are registered.
    """
    problems: dict[str, str] = {}
    clean_profile = {}
    for key, value in profile.items():
        try:
            clean_profile[key] = PROFILE_NORMALIZERS[key](value)
        except NormalizationError as exc:
            problems[key] = str(exc)
    clean_custom = {}
    for key in custom:
        try:
            validate_custom_key(key)
        except NormalizationError as exc:
            problems[f"custom.{key}"] = str(exc)
    valid_custom = {k: v for k, v in custom.items() if f"custom.{k}" not in problems}
    if strict and problems:
        raise ProfileValueError(problems)
    registered = attribute_register_values(valid_custom, known=types)
    for key, value in valid_custom.items():
        if value is None or key not in registered:
            clean_custom[key] = None
            continue
        try:
            clean_custom[key] = coerce(value, registered[key])
        except NormalizationError as exc:
            problems[f"custom.{key}"] = f"{exc} (registered as {registered[key]})"
    if strict and problems:
        raise ProfileValueError(problems)
    return clean_profile, clean_custom, problems


def customer_apply_values(
    customer: Customer, *, profile: dict, custom: dict, fill_only: bool = False, ignore_null: bool = True
) -> bool:
    """Apply normalised values to an in-memory customer; returns whether anything changed.

    `fill_only` only fills unknown values (identity merges). `ignore_null` skips None values
    (tracking: a null trait is ignored); with it off, None clears the value (CSV empty cell).
    The caller saves.
    """
    changed = False
    for key, value in profile.items():
        if value is None and ignore_null:
            continue
        if fill_only and getattr(customer, key) not in (None, ""):
            continue
        if getattr(customer, key) != value:
            setattr(customer, key, value)
            changed = True
    new_custom = dict(customer.custom or {})
    for key, value in custom.items():
        if value is None:
            if ignore_null or key not in new_custom:
                continue
            del new_custom[key]
            changed = True
            continue
        if fill_only and new_custom.get(key) is not None:
            continue
        if new_custom.get(key) != value:
            new_custom[key] = value
            changed = True
    if changed:
        customer.custom = new_custom
        customer.updated_at = timezone.now()
    return changed


def tags_get_or_create(names) -> list[Tag]:
    """Tags by name, case-insensitively, created when missing (decisions 12)."""
    tags = []
    for raw in names:
        name = normalize_text(raw)
        if name is None:
            continue
        if "," in name:
            raise NormalizationError(f"Tag “{name}” may not contain a comma.")
        tag = Tag.objects.annotate(lname=Lower("name")).filter(lname=name.lower()).first()
        if tag is None:
            try:
                with transaction.atomic():
                    tag = Tag.objects.create(name=name)
            except IntegrityError:
                tag = Tag.objects.annotate(lname=Lower("name")).get(lname=name.lower())
        if tag not in tags:
            tags.append(tag)
    return tags


def customer_set_tags(*, customer: Customer, names, replace: bool = True) -> bool:
    tags = tags_get_or_create(names)
    current = set(customer.tags.values_list("pk", flat=True))
    wanted = {t.pk for t in tags} if replace else current | {t.pk for t in tags}
    if wanted == current:
        return False
    customer.tags.set(wanted)
    Customer.objects.filter(pk=customer.pk).update(updated_at=timezone.now())
    return True


@transaction.atomic
def customer_create(*, external_id: str | None = None, tags=None, **values) -> Customer:
    """Create a profile from attribute keys (`email`, ..., `custom.<key>` or `custom={...}`)."""
    customer = Customer(external_id=normalize_text(external_id))
    customer_update(customer=customer, tags=tags, **values)
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, tags=None, custom: dict | None = None, **values) -> Customer:
    """Strictly validated update (REST, admin): any bad value raises ProfileValueError."""
    custom = dict(custom or {})
    profile = {}
    for key, value in values.items():
        if key.startswith("custom."):
            custom[key[len("custom.") :]] = value
        elif key in PROFILE_NORMALIZERS:
            profile[key] = value
        else:
            raise ProfileValueError({key: "Unknown attribute."})
    clean_profile, clean_custom, _ = normalize_values(profile=profile, custom=custom, strict=True)
    customer_apply_values(customer, profile=clean_profile, custom=clean_custom, ignore_null=False)
    customer.save()
    if tags is not None:
        customer_set_tags(customer=customer, names=tags)
    from customers.signals import profile_changed

    profile_changed.send(sender=Customer, customer_ids=[customer.pk], reason="profile_change")
    return customer


@transaction.atomic
def customer_erase(*, customer: Customer, actor=None) -> AuditEntry:
    """GDPR erasure: the profile, its events, ids, memberships and ledger rows, in one transaction.

    The audit entry keeps only the actor, time, internal id and row counts (decisions 44).
    """
    pk = customer.pk
    # Lock the row before the links and other rows are collected: writers that add tag links
    # (imports, bulk tagging) lock the profiles they link first, so either they wait for this
    # erasure and then see the profile gone, or this waits for them and removes their links too.
    Customer.objects.select_for_update().filter(pk=pk).exists()
    _, counts = customer.delete()
    return AuditEntry.objects.create(
        action="customer_erased",
        actor=actor,
        object_type="customer",
        object_id=pk,
        details={"rows": counts},
    )
