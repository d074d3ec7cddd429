"""The commented configuration template ``voicecall init`` writes."""

CONFIG_TEMPLATE = """\
# voicecall configuration. Every key can be overridden by the environment:
# VOICECALL_<KEY>, nested with __ (e.g. VOICECALL_TWILIO__AUTH_TOKEN). TWILIO_ACCOUNT_SID and
# TWILIO_AUTH_TOKEN are used when the [twilio] keys are absent. Keep this file private (0600).

provider = "twilio"                 # twilio | mock
from_number = "+14155550100"        # your Twilio number, E.164
# to_number = "+14155550123"        # default callee for `voicecall call`
public_url = "https://voice.example.com"   # the origin Twilio reaches (no path, no query)

inbound_policy = "disabled"         # disabled | allowlist | open
allow_from = []                     # exact E.164 numbers, used when inbound_policy = "allowlist"
inbound_greeting = "Hello, you have reached voicecall. How can I help?"

max_concurrent_calls = 1
max_duration_seconds = 300          # counted from the answer
ring_timeout_seconds = 30
transcript_timeout_seconds = 180    # how long `continue` waits for the caller

[outbound]
default_mode = "notify"             # notify | conversation
notify_hangup_delay_seconds = 3
# The outbound policy (docs/security.md). Every number dialled must pass it.
# allowed_countries = ["US"]        # default: the country of from_number; "*": any
# allowed_number_types = ["fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "voip"]
blocked_numbers = []                # never called (plus `voicecall block NUMBER`)
max_calls_per_number_per_day = 10
max_calls_per_hour = 30
max_minutes_per_day = 240
quiet_hours = "21:00-08:00"         # callee's local time; remove to call at any hour

[twilio]
# account_sid = "AC..."
# auth_token = "..."
api_base_url = "https://api.twilio.com"

[serve]
bind = "127.0.0.1"                  # a non-loopback bind requires api.token
port = 3334
webhook_path = "/voice/webhook"
stream_path = "/voice/stream"
trusted_proxies = []                # IPs/CIDRs whose X-Forwarded-* headers are believed

[store]
# url = "sqlite:///home/me/.voicecall/voicecall.db"   # or postgresql://user@host/db
# standby_poll_seconds = 2.0   # several instances on one store: one acts, the others wait

[api]
# token = "a long random string"    # bearer token for the control API
"""
