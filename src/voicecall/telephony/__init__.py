"""Telephony moves beside the call lifecycle: recording, keypad out (DTMF) and transfer
(cold/warm) with their model tools (and, from other changes, voicemail and hold). Pure
decisions live in ``recording.py``, ``keypad.py`` and ``transfer_plan.py``; the I/O in
``wavtap.py``, ``recordings.py``, ``dtmf_out.py``, ``transfer.py`` and ``tools.py``."""
