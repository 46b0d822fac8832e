"""One exception tree; the API maps each class to an HTTP status in one place."""

from __future__ import annotations


class TaskHubError(Exception):
    """A TaskHub operation failed."""

    status_code = 500

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(TaskHubError):
    """The configuration is invalid."""


class BadRequest(TaskHubError):
    """The request is malformed."""

    status_code = 400


class NotFound(TaskHubError):
    """No such object."""

    status_code = 404


class UnknownTask(NotFound):
    """No such task."""


class UnknownRun(NotFound):
    """No such run."""


class IllegalTransition(TaskHubError):
    """This transition is not allowed from the run's current status."""

    status_code = 409


class InvalidParams(TaskHubError):
    """The params fail validation."""

    status_code = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StoreError(TaskHubError):
    """The event store failed."""

    status_code = 503


class FenceRefused(StoreError):
    """The append was refused: its fence is not the run's current one (the run was reaped or reclaimed)."""

    status_code = 409


class ConcurrencyConflict(StoreError):
    """Another writer appended to this stream first."""

    status_code = 409
