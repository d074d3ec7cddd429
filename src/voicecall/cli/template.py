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

[task]                              # task calls: an agent makes the whole call (model: [responder])
# disclosure = true                 # open by saying it is an AI assistant calling for someone
# disclosure_text = "Hello, this is an AI assistant calling on someone's behalf."
# owner_timeout_seconds = 60        # how long a question to you (ask_owner) waits
# hold_interval_seconds = 10        # a hold line this often while you think

[reports]                           # the signed end-of-call report (Standard Webhooks)
# url = "https://hooks.example.com/calls"   # default destination (a call may name its own)
# secret = "whsec_..."              # base64 of 24-64 random bytes
# allow_private_urls = false        # never to private/loopback/link-local addresses unless true
"""
