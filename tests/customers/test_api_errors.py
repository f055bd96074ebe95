import pytest
from django.db import DataError
from rest_framework import exceptions

from customers.api.errors import exception_handler

pytestmark = pytest.mark.django_db


def test_database_refusal_of_an_input_value_is_a_readable_400():
    response = exception_handler(DataError("invalid byte sequence"), {})
    assert response.status_code == 400
    assert response.data["code"] == "invalid_value" and "NUL" in response.data["message"]


def test_validation_errors_name_the_field_and_escape_surrogates():
    exc = exceptions.ValidationError({"custom": {"a\udc00": ["Bad key."]}})
    body = exception_handler(exc, {}).data
    assert body["errors"] == [{"field": "custom.a\\udc00", "message": "Bad key."}]
    assert body["message"] == "Bad key. (custom.a\\udc00)"
