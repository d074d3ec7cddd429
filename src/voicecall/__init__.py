"""voicecall: let AI agents place and take real phone calls through Twilio.

The public face: :class:`Client` (a typed client of a running ``voicecall serve``), :class:`Call`,
:func:`load_config`, and the errors users catch.
"""

from voicecall.agent.client import Call, CallInfo, Client, ClientError, ServerUnreachable
from voicecall.config import Settings, load_config
from voicecall.errors import (
    CallError,
    ConfigError,
    InvalidPhoneNumber,
    ProviderError,
    VoicecallError,
)

__version__ = "0.1.0"

__all__ = [
    "Call",
    "CallError",
    "CallInfo",
    "Client",
    "ClientError",
    "ConfigError",
    "InvalidPhoneNumber",
    "ProviderError",
    "ServerUnreachable",
    "Settings",
    "VoicecallError",
    "__version__",
    "load_config",
]
