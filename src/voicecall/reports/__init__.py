"""End-of-call reports: a signed JSON document POSTed to the owner's URL when a call ends.

``signing`` (Standard Webhooks signatures, pure), ``urls`` (which report URLs may be used: the
SSRF guard on resolved addresses), ``document`` (the report body, pure), ``delivery`` (the
durable outbox: attempts on a backoff schedule, resumed at start-up).
"""
