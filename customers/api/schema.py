"""OpenAPI generation: every operation documents the error envelope (decisions 9).

`AutoSchema` adds the error responses each operation can give (400 for input, 401/403 for
authentication and permissions, 404 where the path names an object or a page is asked for) so clients and the fuzzing
test see one documented shape. Views add their own extra codes (409, 413, ...) with
`error_responses(...)` in `extend_schema`.
"""

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ERROR_DESCRIPTIONS = {
    400: "The request is not valid; `errors` names each field (or JSON pointer) with a message.",
    401: "No or invalid credentials (send `Authorization: Token <key>`).",
    403: "The user lacks the permission this operation needs.",
    404: "No such object.",
    409: "The request conflicts with the current state (for example the object is in use).",
    413: "The upload is too large.",
    415: "Unsupported media type.",
}


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(required=False, help_text="The input field (dotted for nested fields).")
    pointer = serializers.CharField(required=False, help_text="JSON pointer into a definition.")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code.")
    message = serializers.CharField(help_text="A sentence a person can act on.")
    errors = ErrorItemSerializer(many=True)


def error_responses(*codes: int) -> dict:
    """`responses` entries for `extend_schema`, e.g. `{**error_responses(409)}`."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS.get(code, "")) for code in codes}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = [400, 401, 403]
        if "{" in self.path or self.method == "GET":  # a named object, or a page / cursor that isn't there
            codes.append(404)
        for code, response in error_responses(*codes).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return responses
