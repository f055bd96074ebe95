"""Segment writes: create, update, copy, delete (issue 4, decisions 24–26, 28, 30).

Every check runs before anything is written, so an invalid request changes nothing. Dynamic
segments are (re)computed in the background after commit; the answer says `pending`.
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify

from customers.normalize import NormalizationError, check_clean, check_clean_deep, normalize_text
from customers.services import tags_get_or_create
from segmentation.models import KEY_PATTERN, RESERVED_KEYS, Membership, Reason, Segment

from .errors import DefinitionProblems, SegmentConflict, SegmentInvalid
from .sql import copy_members

KEY_RE = re.compile(KEY_PATTERN)
KINDS = {choice.value for choice in Segment.Kind}
UPDATABLE = {"name", "key", "description", "definition", "tags", "external_ref", "kind", "owner"}


# ------------------------------------------------------------------------------
# Keys (decisions 24)
# ------------------------------------------------------------------------------
def _key_taken(key: str, *, exclude_pk: int | None = None) -> bool:
    qs = Segment.objects.annotate(lkey=Lower("key")).filter(lkey=key.lower())
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def segment_key_problem(key, *, exclude_pk: int | None = None) -> str | None:
    """Why `key` cannot be used, or None when it can."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        return "Use 3 to 64 characters: ASCII letters, digits, hyphens, underscores and spaces."
    if key.strip() != key:
        return "A key may not start or end with a space."
    if key.lower() in RESERVED_KEYS:
        return f"“{key}” is reserved by the API; choose another key."
    if _key_taken(key, exclude_pk=exclude_pk):
        return f"A segment with the key “{key}” already exists (keys ignore case)."
    return None


def segment_key_from_name(name: str, *, exclude_pk: int | None = None) -> str:
    """A free key derived from the name: `High value (EU)` -> `high-value-eu`, then `-2`, `-3`..."""
    base = slugify(name or "")[:60].strip("-_") or "segment"
    if len(base) < 3 or base in RESERVED_KEYS:
        base = f"segment-{base}" if base != "segment" else "segment"
    candidate, n = base, 1
    while _key_taken(candidate, exclude_pk=exclude_pk):
        n += 1
        candidate = f"{base[: 64 - len(str(n)) - 1]}-{n}"
    return candidate


# ------------------------------------------------------------------------------
# Definitions: validation, dependencies, cycles (decisions 26, 28)
# ------------------------------------------------------------------------------
def _engine():
    # Imported lazily: the engine is a separate, pure package and this keeps import order simple.
    from segmentation import engine

    return engine


def _stored_dependencies(segment: Segment) -> dict:
    if segment.dependencies:
        return segment.dependencies
    if segment.kind == Segment.Kind.DYNAMIC and segment.definition is not None:
        return _engine().definition_dependencies(segment.definition)
    return {}


def _segment_pointers(node, keys: set[str], pointer: str = ""):
    """JSON pointers of the segment conditions that name one of `keys` (lower-cased)."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("segment"), str) and node["segment"].strip().lower() in keys:
        yield f"{pointer}/segment"
    for i, child in enumerate(node.get("conditions") or []):
        yield from _segment_pointers(child, keys, f"{pointer}/conditions/{i}")


def _find_cycle(key: str, references: list[str], *, exclude_pk: int | None) -> list[str] | None:
    """The reference path that leads back to `key`, or None (depth-first over stored dependencies)."""
    graph: dict[str, list[str]] = {}
    display: dict[str, str] = {}
    for other in Segment.objects.exclude(pk=exclude_pk) if exclude_pk else Segment.objects.all():
        graph[other.key.lower()] = list(_stored_dependencies(other).get("segments", []))
        display[other.key.lower()] = other.key
    start = key.lower()
    graph[start] = [r.lower() for r in references]
    display[start] = key
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return [display.get(k, k) for k in [*path, start]]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def definition_check(definition, *, key: str, exclude_pk: int | None = None) -> dict:
    """Validate a dynamic definition for the segment `key`; return its dependencies.

    Raises DefinitionProblems with every problem (engine validation, then reference cycles).
    """
    engine = _engine()
    try:
        check_clean_deep(definition)
    except NormalizationError as exc:
        raise DefinitionProblems([{"pointer": "", "message": str(exc)}])
    existing = Segment.objects.exclude(pk=exclude_pk) if exclude_pk else Segment.objects.all()
    segment_keys = {k.lower() for k in existing.values_list("key", flat=True)}
    if key:
        # A self-reference is reported below as a cycle, with a clearer sentence than "unknown segment".
        segment_keys.add(key.lower())
    problems = engine.validate_definition(definition, segment_keys=segment_keys)
    if problems:
        raise DefinitionProblems(list(problems))
    dependencies = engine.definition_dependencies(definition)
    if key and dependencies.get("segments"):
        cycle = _find_cycle(key, dependencies["segments"], exclude_pk=exclude_pk)
        if cycle:
            path = " → ".join(cycle)
            pointers = list(_segment_pointers(definition, {cycle[1].lower()})) or [""]
            raise DefinitionProblems(
                [
                    {
                        "pointer": p,
                        "message": f"Segments cannot refer to themselves, directly or through others: {path}.",
                    }
                    for p in pointers
                ]
            )
    return dependencies


def segment_dependents(*, key: str, exclude_pk: int | None = None) -> list[Segment]:
    """Segments whose definitions refer to `key` (case-insensitively)."""
    lkey = key.lower()
    qs = Segment.objects.filter(kind=Segment.Kind.DYNAMIC).exclude(pk=exclude_pk)
    return [s for s in qs.order_by("key") if lkey in _stored_dependencies(s).get("segments", [])]


# ------------------------------------------------------------------------------
# Create / update / delete / copy
# ------------------------------------------------------------------------------
def _clean_text(errors: dict, field: str, value, *, required: bool = False, max_length: int | None = None) -> str:
    try:
        clean = normalize_text(value) if value is not None else None
    except NormalizationError as exc:
        errors[field] = str(exc)
        return ""
    if required and not clean:
        errors[field] = "This field is required."
    elif clean and max_length and len(clean) > max_length:
        errors[field] = f"Use at most {max_length} characters."
    return clean or ""


def _set_tags(segment: Segment, tags) -> None:
    try:
        segment.tags.set(tags_get_or_create(tags))
    except NormalizationError as exc:
        raise SegmentInvalid({"tags": str(exc)})


def _request_recompute(segment: Segment, reason: str) -> None:
    from .recompute import segment_request_recompute

    segment_request_recompute(segment=segment, reason=reason)


@transaction.atomic
def segment_create(
    *,
    name: str,
    key: str | None = None,
    kind: str = Segment.Kind.DYNAMIC,
    definition: dict | None = None,
    description: str = "",
    tags: list[str] | None = None,
    external_ref: str = "",
    owner=None,
) -> Segment:
    """Create a segment. Dynamic ones are computed in the background after commit (status `pending`);
    static and external ones are `ready` and empty.

    Raises SegmentInvalid (fields) or DefinitionProblems (definition) and saves nothing then.
    """
    errors: dict[str, str] = {}
    name = _clean_text(errors, "name", name, required=True, max_length=200)
    description = _clean_text(errors, "description", description)
    external_ref = _clean_text(errors, "external_ref", external_ref, max_length=500)
    if kind not in KINDS:
        errors["kind"] = f"Choose one of: {', '.join(sorted(KINDS))}."
    if key is not None and isinstance(key, str):
        key = key.strip()
    if key:
        problem = segment_key_problem(key)
        if problem and kind == Segment.Kind.EXTERNAL and not external_ref and not _key_taken(key):
            # An external system's identifier that does not fit our key rules is kept verbatim in
            # `external_ref`, and the key is derived from it (decisions 24).
            try:
                external_ref = check_clean(key)[:500]
                key, problem = None, None
            except NormalizationError as exc:
                problem = str(exc)
        if problem:
            errors["key"] = problem
    if kind == Segment.Kind.DYNAMIC and definition is None:
        errors["definition"] = "An auto-update segment needs a definition."
    if kind in (Segment.Kind.STATIC, Segment.Kind.EXTERNAL) and definition is not None:
        errors["definition"] = "Only auto-update segments have a definition."
    if errors:
        raise SegmentInvalid(errors)
    key = key or segment_key_from_name(name if name else external_ref)
    dependencies = {}
    if kind == Segment.Kind.DYNAMIC:
        dependencies = definition_check(definition, key=key)
    manual = kind != Segment.Kind.DYNAMIC
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                key=key,
                name=name,
                description=description,
                kind=kind,
                definition=definition,
                external_ref=external_ref,
                owner=owner,
                dependencies=dependencies,
                status=Segment.Status.READY if manual else Segment.Status.PENDING,
                computed_at=timezone.now() if manual else None,
            )
    except IntegrityError:  # a concurrent create took the key between the check and the insert
        raise SegmentInvalid({"key": f"A segment with the key “{key}” already exists (keys ignore case)."})
    if tags:
        _set_tags(segment, tags)
    if kind == Segment.Kind.DYNAMIC:
        _request_recompute(segment, Reason.DEFINITION_CHANGED)
    return segment


@transaction.atomic
def segment_update(*, segment: Segment, **changes) -> Segment:
    """Change a segment's fields (`name`, `key`, `description`, `definition`, `tags`, `external_ref`).

    `kind` is immutable; pre-built segments are read-only; a segment other segments refer to
    keeps its key. A changed definition is validated, its dependencies re-classified, and the
    segment recomputed in the background (status `pending`).
    """
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise SegmentInvalid({field: "This field cannot be changed." for field in sorted(unknown)})
    if segment.prebuilt:
        raise SegmentConflict("Pre-built segments are read-only; copy one to change it.")
    errors: dict[str, str] = {}
    if "kind" in changes and changes["kind"] != segment.kind:
        errors["kind"] = "The kind of a segment cannot change; copy it instead."
    fields = {}
    if "name" in changes:
        fields["name"] = _clean_text(errors, "name", changes["name"], required=True, max_length=200)
    if "description" in changes:
        fields["description"] = _clean_text(errors, "description", changes["description"])
    if "external_ref" in changes:
        fields["external_ref"] = _clean_text(errors, "external_ref", changes["external_ref"], max_length=500)
    if "owner" in changes:
        fields["owner"] = changes["owner"]
    new_key = changes.get("key")
    if isinstance(new_key, str):
        new_key = new_key.strip()
    if new_key is not None and new_key != segment.key:
        problem = segment_key_problem(new_key, exclude_pk=segment.pk)
        if problem:
            errors["key"] = problem
        else:
            fields["key"] = new_key
    definition_changed = "definition" in changes and changes["definition"] != segment.definition
    if definition_changed and segment.kind != Segment.Kind.DYNAMIC and changes["definition"] is not None:
        errors["definition"] = "Only auto-update segments have a definition."
    if definition_changed and segment.kind == Segment.Kind.DYNAMIC and changes["definition"] is None:
        errors["definition"] = "An auto-update segment needs a definition."
    if errors:
        raise SegmentInvalid(errors)
    if "key" in fields and fields["key"].lower() != segment.key.lower():
        dependents = segment_dependents(key=segment.key, exclude_pk=segment.pk)
        if dependents:
            keys = [d.key for d in dependents]
            raise SegmentConflict(
                f"Other segments refer to “{segment.key}”, so its key cannot change: {', '.join(keys)}.", keys
            )
    if definition_changed and segment.kind == Segment.Kind.DYNAMIC:
        key = fields.get("key", segment.key)
        fields["definition"] = changes["definition"]
        fields["dependencies"] = definition_check(changes["definition"], key=key, exclude_pk=segment.pk)
        fields["status"] = Segment.Status.PENDING
    for field, value in fields.items():
        setattr(segment, field, value)
    if fields:
        try:
            with transaction.atomic():
                segment.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:
            raise SegmentInvalid({"key": "A segment with this key already exists (keys ignore case)."})
    if "tags" in changes and changes["tags"] is not None:
        _set_tags(segment, changes["tags"])
    if definition_changed and segment.kind == Segment.Kind.DYNAMIC:
        _request_recompute(segment, Reason.DEFINITION_CHANGED)
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment with its memberships, ledger and history.

    Refused (SegmentConflict) for pre-built segments and for segments other segments refer to.
    """
    if segment.prebuilt:
        raise SegmentConflict("Pre-built segments cannot be deleted.")
    dependents = segment_dependents(key=segment.key, exclude_pk=segment.pk)
    if dependents:
        keys = [d.key for d in dependents]
        raise SegmentConflict(f"Other segments refer to “{segment.key}”: {', '.join(keys)}.", keys)
    try:
        segment.delete()
    except ProtectedError as exc:
        names = sorted({str(obj) for obj in exc.protected_objects})
        raise SegmentConflict(f"“{segment.key}” is still used by: {', '.join(names)}.")


@transaction.atomic
def segment_copy(*, segment: Segment, name: str, key: str | None = None, owner=None) -> Segment:
    """Copy a segment (pre-built ones included) under a new key: definition, description and
    tags, and the members of a static segment (ledger reason `manual`)."""
    copy = segment_create(
        name=name,
        key=key,
        kind=segment.kind,
        definition=segment.definition,
        description=segment.description,
        tags=list(segment.tags.values_list("name", flat=True)),
        owner=owner,
    )
    if segment.kind == Segment.Kind.STATIC:
        copied = copy_members(
            source_id=segment.pk, target_id=copy.pk, at=timezone.now(), detail={"copied_from": segment.key}
        )
        if copied:
            Segment.objects.filter(pk=copy.pk).update(member_count=Membership.objects.filter(segment=copy).count())
            copy.refresh_from_db()
    return copy
