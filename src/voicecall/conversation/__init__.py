"""The conversation on top of a call: what agents say (turns), the responder answering on its
own (autoreply), and the text rules both share. The call lifecycle is in :mod:`voicecall.calls`.
"""
