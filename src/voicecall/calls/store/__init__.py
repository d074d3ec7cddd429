"""calls/store."""
