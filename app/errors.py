"""Domain errors raised by services; the web and API layers map them to HTTP answers."""


class DomainError(Exception):
    status = 400

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    """Missing, or outside the caller's units: both answer 404 so scope is not revealed."""

    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    """The case moved on (task no longer ready, claimed by someone else, stale version)."""

    status = 409


class InvalidInput(DomainError):
    """Submitted data failed validation; ``errors`` maps field path → list of messages."""

    status = 422

    def __init__(self, message: str, errors: dict[str, list[str]], **details):
        super().__init__(message, **details)
        self.errors = errors
