"""One error envelope for the whole REST API (decisions 9):

{"code": "...", "message": "...", "errors": [{"field" | "pointer": "...", "message": "..."}]}
"""

import logging

from django.core.exceptions import PermissionDenied
from django.db import DataError, connection, transaction
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The upload is too large."
    default_code = "too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "This service is not available yet."
    default_code = "unavailable"


class InvalidValue(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = (
        "A value in the request cannot be stored (for example a NUL character in text or a number out of range)."
    )
    default_code = "invalid_value"


class DefinitionInvalid(exceptions.APIException):
    """Carries engine validation problems: a list of {"pointer", "message"}."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_definition"

    def __init__(self, problems, field="definition"):
        self.problems = problems
        self.field = field
        super().__init__(f"The {field} is not valid: {len(problems)} problem(s).")


def _readable(text) -> str:
    # Messages may quote the offending input; an unpaired surrogate in it would make the JSON
    # renderer fail with a 500, so it is shown escaped instead.
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _flatten(detail, prefix=""):
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            yield from _flatten(value, name)
    elif isinstance(detail, list):
        for i, value in enumerate(detail):
            if isinstance(value, dict | list):
                yield from _flatten(value, f"{prefix}.{i}" if prefix else str(i))
            else:
                yield prefix, str(value)
    else:
        yield prefix, str(detail)


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DataError):
        # The database refused an input value that validation let through. It is the client's
        # input, so a 400 rather than a 500; logged so the missing validation gets added.
        logger.warning("Database refused a request value: %s", exc)
        if connection.in_atomic_block:  # PostgreSQL aborted the transaction; don't reuse it
            transaction.set_rollback(True)
        exc = InvalidValue()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DefinitionInvalid):
        errors = [{"pointer": p["pointer"], "message": p["message"]} for p in exc.problems]
        body = {"code": exc.default_code, "message": str(exc.detail), "errors": errors}
    elif isinstance(exc, exceptions.ValidationError):
        errors = [{"field": field or "non_field_errors", "message": message} for field, message in _flatten(exc.detail)]
        first = errors[0] if errors else {"field": "", "message": "Invalid input."}
        where = f" ({first['field']})" if first["field"] and first["field"] != "non_field_errors" else ""
        body = {"code": "invalid", "message": f"{first['message']}{where}", "errors": errors}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(exc, "default_code", "error")
        if isinstance(detail, dict):
            message = str(detail.get("detail", detail))
        else:
            message = str(detail)
        body = {"code": code, "message": message, "errors": []}
    body["message"] = _readable(body["message"])
    body["errors"] = [{k: _readable(v) for k, v in item.items()} for item in body["errors"]]
    response.data = body
    return response
