"""One :class:`Telephony` per call manager: the keypad, the transfers and their model tools.

``telephony_for(manager)`` makes it on first use (the server does so when it starts acting on
the store, so the tools are offered from the first call) and gives the same object to the API
routes and the webhook endpoint; the call manager itself knows nothing of it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from voicecall.providers.base import ParsedWebhook, Reply, WebhookKind
from voicecall.telephony.dtmf_out import Keypad
from voicecall.telephony.tools import register_tools
from voicecall.telephony.transfer import Transfers

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

#: the webhook kinds this package answers (the manager answers the others)
WEBHOOK_KINDS = frozenset({WebhookKind.WHISPER, WebhookKind.DIAL})


class Telephony:
    def __init__(self, core: CallManager) -> None:
        self.keypad = Keypad(core)
        self.transfers = Transfers(core)
        register_tools(core, self.keypad, self.transfers)

    async def handle_webhook(self, hook: ParsedWebhook) -> Reply:
        return await self.transfers.handle_webhook(hook)


_BY_MANAGER: weakref.WeakKeyDictionary[CallManager, Telephony] = weakref.WeakKeyDictionary()


def telephony_for(core: CallManager) -> Telephony:
    """The manager's :class:`Telephony` (made, and its tools registered, on first use)."""
    found = _BY_MANAGER.get(core)
    if found is None:
        found = _BY_MANAGER[core] = Telephony(core)
    return found
