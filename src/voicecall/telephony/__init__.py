"""Telephony moves beside the conversation: answering machines (voicemail) and hold/IVR."""
