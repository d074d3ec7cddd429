"""The model tools of the telephony moves: ``send_dtmf(digits)`` and ``transfer_call(to, mode,
summary)``, registered with the task calls (``TaskCalls.provide_tool``).

``send_dtmf`` is offered to every task call. ``transfer_call`` only to a task call whose
request listed ``transfer_to`` numbers, and only those numbers may be used (the outbound
policy applies on top, as for the API). A refused or failed move is a tool result the model
reads (``{"error": …}``), never the end of the conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voicecall.conversation.tools import (
    SEND_DTMF,
    TRANSFER_CALL,
    ToolCall,
    ToolHandler,
    ToolOutcome,
)
from voicecall.errors import VoicecallError
from voicecall.telephony.transfer_plan import (
    TransferMode,
    TransferState,
    allowed_targets,
    transfer_of,
)

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager
    from voicecall.telephony.dtmf_out import Keypad
    from voicecall.telephony.transfer import Transfers


def outcome_of(transfer: TransferState) -> dict[str, Any]:
    """The ``transfer_call`` result the model reads once the number took the call or not."""
    if transfer.status.came_back:
        return {
            "status": transfer.status.value,
            "to": transfer.to,
            "note": "The number did not take the call; the caller is back with you. Tell them "
            "and go on with the conversation.",
        }
    return {"status": transfer.status.value, "to": transfer.to}


def register_tools(core: CallManager, keypad: Keypad, transfers: Transfers) -> None:
    """Offer ``send_dtmf`` and ``transfer_call`` to task calls placed from now on."""

    def make_dtmf(call_id: str) -> ToolHandler:
        async def send_dtmf(call: ToolCall) -> ToolOutcome:
            try:
                sent = await keypad.send(call.call_id, str(call.arguments["digits"]))
            except VoicecallError as exc:
                return ToolOutcome({"error": str(exc)})
            return ToolOutcome({"status": "pressed", **sent.to_json()})

        return send_dtmf

    def make_transfer(call_id: str) -> ToolHandler | None:
        live = core.live(call_id)
        allowed = allowed_targets(live.record.metadata) if live is not None else ()
        if not allowed:
            return None  # no transfer_to on this call: the tool is not offered

        async def transfer_call(call: ToolCall) -> ToolOutcome:
            args: dict[str, Any] = call.arguments
            to = str(args.get("to", "")).strip()
            if to not in allowed:
                return ToolOutcome(
                    {"error": f"to: not a number this call may transfer to ({', '.join(allowed)})"}
                )
            try:
                record = await transfers.start(
                    call.call_id,
                    to=to,
                    mode=TransferMode(str(args.get("mode", "cold"))),
                    summary=args.get("summary"),
                )
            except (VoicecallError, ValueError) as exc:
                return ToolOutcome({"error": str(exc)})
            transfer = transfer_of(record.metadata)
            if transfer is None or not transfer.status.under_way:  # cold: handed over
                status = transfer.status.value if transfer is not None else "handed-over"
                return ToolOutcome({"status": status, "to": to})
            tool_id = call.id

            def done(result: TransferState) -> None:
                core.tasks.resolve_tool(call.call_id, tool_id, outcome_of(result))

            transfers.on_result(call.call_id, done)
            # the result comes later: nothing more is said while the number rings
            return ToolOutcome({"status": "dialing", "to": to}, pending=True)

        return transfer_call

    core.tasks.provide_tool(SEND_DTMF, make_dtmf)
    core.tasks.provide_tool(TRANSFER_CALL, make_transfer)
