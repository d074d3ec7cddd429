"""Telephony moves beside the call lifecycle: recording, keypad out (DTMF) and transfer
(cold/warm) with their model tools; answering machines (voicemail) and hold. Pure decisions
live in ``recording.py``, ``keypad.py``, ``transfer_plan.py``, ``options.py``, ``machine.py``
and ``holdwatch.py``; the I/O in ``wavtap.py``, ``recordings.py``, ``dtmf_out.py``,
``transfer.py``, ``tools.py``, ``voicemail.py`` and ``hold.py``."""
