"""Control API routes of the telephony moves: ``POST /api/calls/{id}/dtmf`` (press keys) and
``POST /api/calls/{id}/transfer`` (hand the call to another number, cold or warm)."""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from voicecall.audio.dtmf import MAX_DIGITS
from voicecall.calls.manager import CallManager
from voicecall.calls.outbound import Requester
from voicecall.phone import E164_PATTERN
from voicecall.server.api_docs import problems
from voicecall.telephony.service import telephony_for
from voicecall.telephony.transfer_plan import MAX_SUMMARY_CHARS
from voicecall.textrules import check_client_text, text_schema

DIGITS_PATTERN = "^[0-9*#A-Da-dwW]+$"

SummaryText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SUMMARY_CHARS),
    AfterValidator(check_client_text),
    WithJsonSchema(text_schema(MAX_SUMMARY_CHARS)),
]


class SendDigits(BaseModel):
    digits: str = Field(
        max_length=MAX_DIGITS,
        json_schema_extra={"pattern": DIGITS_PATTERN, "minLength": 1},
        description="Keys to press in order: 0-9, *, #, A-D; w waits 0.5 s (e.g. 1w23#). "
        "A-D only on calls with a media stream",
    )


class DigitsSent(BaseModel):
    call_id: str
    digits: str = Field(description="The keys, normalized (A-D upper case)")
    via: Literal["stream", "play"] = Field(
        description="stream: in-band tones on the media stream; play: <Play digits> on the call"
    )
    seconds: float = Field(description="About how long the keys take to send")


class TransferCall(BaseModel):
    to: str = Field(
        max_length=16,
        json_schema_extra={"pattern": E164_PATTERN},
        description="E.164 number to transfer to, exactly as written; the outbound policy "
        "applies (403/429 naming the rule)",
    )
    mode: Literal["cold", "warm"] = Field(
        description="cold: connect at once, the call ends here as transferred; warm: the number "
        "first hears `summary`; if it does not answer, the caller is back with the agent"
    )
    summary: SummaryText | None = Field(
        None, description="warm (required): what the number hears before it is connected"
    )


def add_telephony_routes(
    api: FastAPI,
    *,
    call_id_dep: Any,
    auth: Any,
    manager: Callable[..., CallManager],
    requester: Callable[..., Requester],
    call_out: Callable[[Any], Any],
    call_model: type[BaseModel],
) -> None:
    """Add the routes; the dependencies are those of :mod:`voicecall.server.api`."""
    Manager = Annotated[CallManager, Depends(manager)]
    Who = Annotated[Requester, Depends(requester)]
    CallId = Annotated[str, Depends(call_id_dep)]
    Auth = Annotated[None, Depends(auth)]

    @api.post(
        "/api/calls/{call_id}/dtmf",
        response_model=DigitsSent,
        responses=problems(400, 404, 409, 415, 422, 502),
    )
    async def send_dtmf(
        call_id: CallId,
        body: SendDigits,
        _: Auth,
        m: Manager,
    ) -> DigitsSent:
        """Press keys on a live call (invalid digits 422, a call that is not live 409)."""
        sent = await telephony_for(m).keypad.send(call_id, body.digits)
        return DigitsSent.model_validate(sent.to_json())

    @api.post(
        "/api/calls/{call_id}/transfer",
        response_model=call_model,
        response_model_by_alias=True,
        responses=problems(400, 403, 404, 409, 415, 422, 429, 502),
    )
    async def transfer(
        call_id: CallId,
        body: TransferCall,
        _: Auth,
        m: Manager,
        who: Who,
    ) -> Any:
        """Transfer a live call to another number, cold or warm (see docs/telephony.md)."""
        record = await telephony_for(m).transfers.start(
            call_id, to=body.to, mode=body.mode, summary=body.summary, requester=who
        )
        return call_out(record)
