"""Pytest fixtures for the emulator. Import them into a ``conftest.py``::

    from voicecall.emulator.pytest_plugin import emulator, emulator_credentials  # noqa: F401

``emulator`` is a running :class:`~voicecall.emulator.Emulator` on a free loopback port
(``emulator.base_url`` is the Twilio API base URL to give the code under test).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from voicecall.emulator.runtime import Emulator

__all__ = ["EmulatorCredentials", "emulator", "emulator_credentials"]


@dataclass(frozen=True)
class EmulatorCredentials:
    account_sid: str
    auth_token: str

    def __repr__(self) -> str:
        return f"EmulatorCredentials(account_sid={self.account_sid!r}, auth_token='***')"


@pytest.fixture
def emulator_credentials() -> EmulatorCredentials:
    """Fresh random credentials per test."""
    return EmulatorCredentials("AC" + secrets.token_hex(16), secrets.token_hex(16))


@pytest_asyncio.fixture
async def emulator(emulator_credentials: EmulatorCredentials) -> AsyncIterator[Emulator]:
    """A running emulator on ``127.0.0.1`` with a free port."""
    async with Emulator(
        account_sid=emulator_credentials.account_sid,
        auth_token=emulator_credentials.auth_token,
        host="127.0.0.1",
        port=0,
    ) as emu:
        yield emu
