"""The MCP tools of task calls: ``answer_question`` (answer the call agent's question) and
``wait_for_call`` (follow a task call to its outcome, with progress notifications when the client
gave a progress token). Thin: each is one request to the control API through
:class:`~voicecall.agent.client.Client`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from voicecall.agent.client import Client
from voicecall.agent.mcp_common import (
    MAX_WAIT_SECONDS,
    CallId,
    guard,
    progress_line,
    task_result,
    transcript_lines,
)
from voicecall.errors import VoicecallError


def add_task_tools(server: MCPServer[Any], client: Client) -> None:
    @server.tool(
        title="Answer the call agent's question",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def answer_question(
        call_id: CallId,
        answer: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4000,
                description="Your answer, in plain words (the agent on the call uses it).",
            ),
        ],
    ) -> dict[str, Any]:
        """Answer the question the agent of a task call is asking (its `pending_question`).
        The agent goes on with your answer at once; then call wait_for_call for the outcome."""
        done = await guard(client.answer(call_id, answer), call_id)
        return {
            "call_id": call_id,
            "question": done.get("question"),
            "answer": done.get("answer"),
            "next": "Call wait_for_call to follow the call to its outcome.",
        }

    @server.tool(title="Wait for a call", annotations=ToolAnnotations(read_only_hint=True))
    async def wait_for_call(
        call_id: CallId,
        ctx: Context,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=MAX_WAIT_SECONDS,
                description="Longest time to wait, in seconds (at most 600).",
            ),
        ] = 120,
    ) -> dict[str, Any]:
        """Wait until the call has ended and its outcome is final, until its agent asks you a
        question (pending_question: answer it with answer_question), or until wait_seconds pass.
        Returns the outcome, summary and state. Sends progress notifications (state changes,
        transcript lines) while waiting if you asked for progress."""
        watcher: asyncio.Task[None] | None = None
        meta = getattr(ctx.request_context, "meta", None) or {}
        if meta.get("progress_token") is not None:

            async def watch() -> None:
                count = 0
                with contextlib.suppress(VoicecallError):
                    async for event in client.events():
                        doc = event.get("call") or {}
                        if call_id not in (event.get("call_id"), doc.get("call_id")):
                            continue
                        line = progress_line(event)
                        if line is not None:
                            count += 1
                            await ctx.report_progress(count, None, line[:500])

            watcher = asyncio.create_task(watch())
        try:
            info = await guard(client.status(call_id, wait=max(wait_seconds, 0.001)), call_id)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        result = task_result(info)
        result["transcript"] = transcript_lines(info)[-20:]
        return result
