"""Telephony moves beside the call lifecycle: voicemail (answering-machine detection), hold and
IVR menus, keypad out (DTMF), transfer (cold/warm) with their model tools, and recording.

Pure decisions live in ``options.py``, ``machine.py``, ``holdwatch.py``, ``keypad.py``,
``transfer_plan.py`` and ``recording.py``; the I/O in ``voicemail.py``, ``hold.py``,
``dtmf_out.py``, ``transfer.py``, ``tools.py``, ``wavtap.py`` and ``recordings.py``."""
