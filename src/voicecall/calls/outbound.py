"""The outbound gate: applies the pure outbound policy with the facts from the store, and keeps
the audit trail. Every number the service dials goes through :meth:`OutboundGate.check_outbound`
before any provider request (``CallManager.place_call`` today; transfers call the same method).

* The facts: the do-not-call entry of the number and the recent outbound counts (read only when
  a limit is configured), ``now`` from the manager's clock.
* A refusal raises :class:`OutboundRefused` (403), :class:`OutboundLimited` (429) or, for
  ``max_concurrent_calls``, :class:`TooManyCalls` (429), after it was written to the audit trail
  (a trail that cannot be written does not turn a refusal into a call: it is logged).
* A store that cannot be read refuses the call too (``StoreError``, 503): the policy fails closed.
* ``lock`` serializes check-then-store: a caller holds it from the check until the call row is
  stored, so two concurrent requests cannot both pass a limit that has room for one.
* Who asked: the client surface (``api``, ``cli``, ``mcp``, ``python``; sent by the clients in
  ``X-Voicecall-Client``) and a short non-reversible fingerprint of the API token used.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from voicecall.calls import policy
from voicecall.calls.store.base import AuditEntry, BlockedNumber, Store
from voicecall.config import Settings
from voicecall.errors import (
    InvalidRequest,
    OutboundLimited,
    OutboundRefused,
    StoreError,
    TooManyCalls,
)
from voicecall.phone import parse_e164

log = logging.getLogger("voicecall.outbound")

DAY_SECONDS = 86_400.0


class Surface(StrEnum):
    """Which client asked (``X-Voicecall-Client``)."""

    API = "api"
    CLI = "cli"
    MCP = "mcp"
    PYTHON = "python"


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for a call: the client surface and the fingerprint of the token used."""

    surface: str = Surface.API.value
    token_fingerprint: str | None = None


def token_fingerprint(token: str | None) -> str | None:
    """A short, non-reversible fingerprint of an API token (``tk_`` + 12 hex digits of a keyed
    BLAKE2b): it tells tokens apart in the audit trail without storing anything that helps to
    recover them. ``None`` when no token was used."""
    if not token:
        return None
    digest = hashlib.blake2b(token.encode(), digest_size=6, person=b"voicecall-token")
    return "tk_" + digest.hexdigest()


class OutboundGate:
    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.rules = policy.OutboundRules.from_settings(settings)
        self.store = store
        self._clock = clock
        self._keep_seconds = settings.outbound.audit_retention_days * DAY_SECONDS
        #: held from the policy check until the call row is stored (see the module doc)
        self.lock = asyncio.Lock()

    async def check_outbound(
        self,
        number: str,
        *,
        surface: str = Surface.API.value,
        token_fingerprint: str | None = None,
        field: str = "to",
        active_calls: int | None = None,
    ) -> str:
        """Return ``number`` (E.164) if the policy allows dialling it now; otherwise audit the
        refusal and raise it. ``active_calls`` (calls up now) checks ``max_concurrent_calls``;
        leave it ``None`` for a number dialled within a call that is already up (a transfer)."""
        e164 = parse_e164(number, field=field)
        facts = policy.number_facts(e164)
        now = self._clock()
        listed = await self.store.blocked_number(e164)
        counts = policy.OutboundCounts()
        if self.rules.counts_needed:
            counts = await self.store.outbound_counts(e164, now=now)
        refusal = policy.decide(
            facts,
            self.rules,
            counts,
            now=now,
            do_not_call=_reason(listed),
            active_calls=active_calls,
            field=field,
        )
        if refusal is None:
            return e164
        await self._audit(
            AuditEntry(
                at=now,
                number=e164,
                surface=surface,
                outcome="refused",
                token_fingerprint=token_fingerprint,
                rule=refusal.rule,
                detail=refusal.detail,
            )
        )
        if refusal.rule == "max_concurrent_calls":
            raise TooManyCalls(refusal.detail)
        if refusal.status == policy.LIMITED:
            raise OutboundLimited(refusal.detail, rule=refusal.rule)
        raise OutboundRefused(refusal.detail, rule=refusal.rule)

    async def record_placed(
        self,
        number: str,
        call_id: str,
        *,
        surface: str = Surface.API.value,
        token_fingerprint: str | None = None,
    ) -> None:
        """Audit a call that is about to be dialled. Raises ``StoreError``: the caller must not
        dial a call the audit trail does not know about."""
        entry = AuditEntry(
            at=self._clock(),
            number=number,
            surface=surface,
            outcome="placed",
            token_fingerprint=token_fingerprint,
            call_id=call_id,
        )
        await self.store.record_audit(entry, keep_seconds=self._keep_seconds)

    async def _audit(self, entry: AuditEntry) -> None:
        try:
            await self.store.record_audit(entry, keep_seconds=self._keep_seconds)
        except StoreError as exc:  # the refusal stands; only its record is missing
            log.error("audit trail: refusal of a call (%s) not recorded: %s", entry.rule, exc)

    # -- the do-not-call list ------------------------------------------------------------

    async def block(self, number: str, *, reason: str | None) -> tuple[BlockedNumber, bool]:
        """Put ``number`` on the do-not-call list; the entry and whether it is new."""
        e164 = parse_e164(number, field="number")
        try:
            created = await self.store.block_number(e164, reason=reason, now=self._clock())
        except ValueError as exc:
            raise InvalidRequest(f"reason: {exc}") from None
        entry = await self.store.blocked_number(e164)
        if entry is None:  # unblocked in between by another request
            entry = BlockedNumber(e164, reason, self._clock())
        return entry, created

    async def unblock(self, number: str) -> bool:
        return await self.store.unblock_number(parse_e164(number, field="number"))

    async def blocked(self) -> list[BlockedNumber]:
        return await self.store.blocked_numbers()

    async def audit(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        try:
            return await self.store.audit(limit=limit, before=before)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None


def _reason(entry: BlockedNumber | None) -> str | bool | None:
    if entry is None:
        return False
    return entry.reason
