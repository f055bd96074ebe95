"""Errors raised by segment services; the API maps them onto its envelope (decisions 9)."""


class SegmentError(Exception):
    """Base class: `message` is a sentence a marketer can act on."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class SegmentInvalid(SegmentError):
    """Field problems: `errors` maps a field name to a sentence (400)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class DefinitionProblems(SegmentError):
    """The definition is invalid; `problems` is a list of {"pointer", "message"} (400)."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__(f"The definition is not valid: {len(problems)} problem(s).")


class SegmentConflict(SegmentError):
    """The change conflicts with the state of other objects (409); `dependents` lists segment keys."""

    def __init__(self, message: str, dependents: list[str] | None = None):
        self.dependents = dependents or []
        super().__init__(message)
