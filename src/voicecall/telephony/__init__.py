"""Telephony moves on a live call: keypad out (DTMF) and transfer (cold/warm), with their
model tools. Pure decisions live in ``keypad.py`` and ``transfer_plan.py``; the I/O in
``dtmf_out.py``, ``transfer.py`` and ``tools.py``."""
