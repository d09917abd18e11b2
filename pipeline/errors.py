"""Errors of the pipeline. The class decides what the balancer does with a failed step.

    PipelineError
    ├── SourceUnavailable        transient: timeouts, refused connections, HTTP 5xx/429,
    │                            RETS 20209/20210/20412...; retried with exponential backoff
    └── PermanentError           fails the run at once, with a message a person can act on
        ├── SourceAuthError      the source refused our credentials
        ├── FeedNotFound         the file, URL, resource or class does not exist
        ├── FeedFormatError      what the source sent cannot be read (says where and why)
        └── SourceConfigError    the source's spec is wrong, or a ${VAR} it names is not set
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of the pipeline's errors."""

    transient = False


class SourceUnavailable(PipelineError):
    """The source could not be reached or asked us to come back later; worth retrying.

    ``retry_after`` (seconds), when the source said when to come back, stretches the backoff.
    """

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(PipelineError):
    """Retrying will not help; a person has to act."""


class SourceAuthError(PermanentError):
    pass


class FeedNotFound(PermanentError):
    pass


class FeedFormatError(PermanentError):
    def __init__(self, reason: str, *, where: str | None = None, line: int | None = None):
        location = ", ".join(p for p in (where, f"line {line}" if line is not None else None) if p)
        super().__init__(f"{location}: {reason}" if location else reason)
        self.reason, self.where, self.line = reason, where, line


class SourceConfigError(PermanentError):
    pass
