"""Telephony moves beside the call lifecycle: recording (and, from other changes, voicemail,
keypad, hold and transfer)."""
