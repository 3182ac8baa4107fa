"""OpenAPI generation: every operation documents the error answers it can give, in
the one error format (``scoring.api.errors``), with an example each, so no view
can forget them."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema

from scoring.api.errors import ErrorResponseSerializer, error_body

ERROR_EXAMPLES: dict[str, tuple[str, dict]] = {
    "400": (
        "The input is invalid: `details` lists the problems per field.",
        error_body(
            "invalid",
            "Invalid input: portfolio: This field is required.",
            {"portfolio": ["This field is required."]},
        ),
    ),
    "401": (
        "No credentials, or credentials that are not valid (send `Authorization: Token <key>` or log in).",
        error_body("not_authenticated", "Authentication credentials were not provided."),
    ),
    "403": (
        "Authenticated, but the grant for this action on this portfolio is missing.",
        error_body("permission_denied", "You do not have permission to perform this action."),
    ),
    "404": (
        "No such object, or one in a portfolio you are not granted (the two are indistinguishable); "
        "in a list, a page past the last.",
        error_body("not_found", "Not found."),
    ),
    "409": (
        "The object's state forbids this now (see `message`).",
        error_body("conflict", "Only a trained model can be approved; this one is training."),
    ),
    "429": (
        "Too many requests; retry after the number of seconds in `details` and the `Retry-After` header.",
        error_body(
            "throttled",
            "Request was throttled. Expected available in 12 seconds.",
            {"retry_after_seconds": 12},
        ),
    ),
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses of each operation."""

    def error_codes(self, operation: dict) -> list[str]:
        """401/403/429 can answer anything. 400 anything taking input: a body, or query
        parameters (filters, page size, file format). 404 anything naming an object: in
        the path, in the body of a write (a portfolio id), or a page number past the end."""
        query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        codes = ["401", "403"]
        if "requestBody" in operation or query:
            codes.append("400")
        if "{" in self.path or self.method in WRITE_METHODS or "page" in query:
            codes.append("404")
        codes.append("429")
        return codes

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        component = self.resolve_serializer(ErrorResponseSerializer(), "response")
        responses = operation["responses"]
        # Error statuses a view declares itself (409) get the same treatment.
        codes = [*self.error_codes(operation), *(c for c in responses if c in ERROR_EXAMPLES)]
        for code in dict.fromkeys(codes):
            entry = responses.setdefault(code, {})
            entry.setdefault("description", ERROR_EXAMPLES[code][0])
            media = entry.setdefault("content", {}).setdefault("application/json", {})
            media["schema"] = component.ref
            media.setdefault("examples", {code_name(code): {"value": ERROR_EXAMPLES[code][1]}})
        operation["responses"] = dict(sorted(responses.items()))
        return operation


def code_name(code: str) -> str:
    return {
        "400": "Invalid",
        "401": "NotAuthenticated",
        "403": "PermissionDenied",
        "404": "NotFound",
        "409": "Conflict",
        "429": "Throttled",
    }[code]
