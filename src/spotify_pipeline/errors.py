"""The exception tree. Every error the CLI can show is one of these.

PipelineError                 base: a one-line message that says what is wrong and what to do
├── ConfigError               missing or invalid settings (credentials, lake path, options)
├── InputError                a bad playlist reference or other user input; raised before any request
├── ApiError                  the Spotify Web API (or a compatible server) refused or failed
│   ├── AuthError             credentials rejected, token cannot be obtained
│   ├── TokenUnavailable      the accounts service is unreachable or failing: no request can succeed
│   ├── RetryWaitTooLong      a 429 asked us to wait longer than --max-retry-wait
│   └── ResponseError         a response that is not what the API documents (malformed JSON, ...)
├── LakeError                 the lake folder cannot be read or written
└── QueryError                a SQL query failed or was refused (write statements)

Interrupted (a KeyboardInterrupt, not a PipelineError: nothing went wrong in the pipeline) is Ctrl-C or a
scheduler's SIGTERM, raised in the main thread so that the run is finalised and recorded `interrupted`.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(PipelineError):
    exit_code = 2


class InputError(PipelineError):
    exit_code = 2


class ApiError(PipelineError):
    """An HTTP-level failure; `status` is the HTTP status (0 for a connection failure)."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        url: str = "",
        retriable: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.url = url
        self.retriable = retriable


class AuthError(ApiError):
    exit_code = 4


class TokenUnavailable(ApiError):
    """No access token: the accounts service cannot be reached or answers 5xx. Every request needs a token,
    so the run stops at the first one instead of failing each playlist the same way (exit 3)."""


class RetryWaitTooLong(ApiError):
    """Raised when the server asks for a wait beyond the configured cap; the run stops cleanly."""

    exit_code = 5

    def __init__(self, message: str, *, retry_after: float, quota_exceeded: bool, url: str = "") -> None:
        super().__init__(message, status=429, url=url)
        self.retry_after = retry_after
        self.quota_exceeded = quota_exceeded


class ResponseError(ApiError):
    pass


class LakeError(PipelineError):
    exit_code = 6


class QueryError(PipelineError):
    exit_code = 7


class QualityError(PipelineError):
    exit_code = 8

    def __init__(self, message: str, *, checks: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.checks = checks


class Interrupted(KeyboardInterrupt):
    """The run was stopped from outside: Ctrl-C (exit 130) or SIGTERM (exit 143, what schedulers send)."""

    def __init__(self, reason: str = "interrupted by the user (Ctrl-C)", exit_code: int = 130) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


def interruption_reason(exc: BaseException) -> str:
    """Why a run was interrupted, for its record: an `Interrupted`'s reason; a bare KeyboardInterrupt is Ctrl-C."""
    return exc.reason if isinstance(exc, Interrupted) else "interrupted by the user (Ctrl-C)"
