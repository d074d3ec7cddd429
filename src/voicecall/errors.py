"""The exception tree users catch.

::

    VoicecallError                      base of everything voicecall raises on purpose
    ├── ConfigError                     the configuration is invalid (carries one line per problem)
    ├── InvalidRequest                  a request to the API/CLI is malformed
    │   └── InvalidPhoneNumber          a number is not valid E.164 / not dialable
    ├── ProviderError                   the telephony provider refused or failed a request
    │   ├── ProviderAuthError           credentials rejected (Twilio 20003)
    │   ├── ProviderRateLimited         too many requests (429 / 20429); retryable
    │   ├── ProviderUnavailable         5xx, connection failure or timeout; retryable
    │   ├── CallNotFound                unknown call sid (20404)
    │   └── InvalidCallState            the call is not in a state that allows this (21220)
    ├── WebhookRejected                 a webhook failed verification or parsing (has HTTP status)
    ├── StoreError                      the durable store failed; the effect was not persisted
    ├── SpeechError                     a TTS/STT engine or service failed (voicecall.speech.errors:
    │                                   SpeechAuthError, SpeechRequestRejected, SpeechUnavailable,
    │                                   SpeechProtocolError, SpeechEngineMissing)
    ├── OutboundRefused                 the outbound policy refuses to dial this number (403;
    │   │                               ``rule`` names the setting or list that refused)
    │   └── OutboundLimited             an outbound limit is reached (429)
    └── CallError                       a call-level operation cannot be done
        ├── UnknownCall                 no call with that id
        ├── AmbiguousCallId             a call id prefix matches more than one call
        ├── CallNotActive               the call has already ended
        ├── TooManyCalls                max_concurrent_calls reached (``rule``)
        ├── NoRecording                 the call has no recording (404)
        └── TurnTimeout                 no transcript arrived in time

Errors raised by httpx, sqlite3 or psycopg are translated at the edge that meets them.
"""

from __future__ import annotations


class VoicecallError(Exception):
    """Base class of every error voicecall raises on purpose."""

    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(VoicecallError):
    """The configuration is invalid. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) if self.problems else "invalid configuration")


class InvalidRequest(VoicecallError):
    """The caller's request is malformed (empty message, bad mode, …)."""

    http_status = 422


class InvalidPhoneNumber(InvalidRequest):
    pass


class ProviderError(VoicecallError):
    """The provider refused or failed a request. ``code`` is the provider's error code."""

    http_status = 502
    retryable: bool = False
    #: True when the request may have taken effect even though no answer came back (a create
    #: call whose response was lost): repeating it could ring someone twice
    maybe_created: bool = False
    #: True when an attempt of this request may have taken effect at the provider (it was sent
    #: and its answer was lost or a 5xx) although the request as a whole failed
    maybe_applied: bool = False

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    def __str__(self) -> str:
        if self.code is not None:
            return f"{self.message} (provider code {self.code})"
        return self.message


class ProviderAuthError(ProviderError):
    pass


class ProviderRateLimited(ProviderError):
    retryable = True


class ProviderUnavailable(ProviderError):
    retryable = True


class CallNotFound(ProviderError):
    http_status = 404


class InvalidCallState(ProviderError):
    http_status = 409


class WebhookRejected(VoicecallError):
    """A webhook failed verification or parsing; ``http_status`` is the answer to give."""

    def __init__(self, message: str, *, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


class StoreError(VoicecallError):
    http_status = 503


class OutboundRefused(VoicecallError):
    """The outbound policy refuses this number (:mod:`voicecall.calls.policy`). ``rule`` is the
    setting or list that refused (``outbound.allowed_countries``, ``do_not_call`` …)."""

    http_status = 403

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class OutboundLimited(OutboundRefused):
    """An outbound limit is reached (calls per number per day, per hour, minutes per day)."""

    http_status = 429


class CallError(VoicecallError):
    http_status = 409


class UnknownCall(CallError):
    http_status = 404


class AmbiguousCallId(CallError):
    http_status = 409


class CallNotActive(CallError):
    http_status = 409


class TooManyCalls(CallError):
    http_status = 429
    rule = "max_concurrent_calls"


class NoRecording(CallError):
    """The call has no recording (it did not record, Twilio recorded nothing, or it was deleted)."""

    http_status = 404


class TurnTimeout(CallError):
    http_status = 504
