"""Real-time voice over Twilio Media Streams: the per-call speech pipeline.

- :mod:`voicecall.voice.settings` — tunables from the ``[pacer]``/``[vad]``/``[streaming]``
  sections, the ``[tts]``/``[stt]`` mapping onto the speech registry, ``streaming_available``.
- :mod:`voicecall.voice.bargein` — pure barge-in decision and "what was heard" arithmetic.
- :mod:`voicecall.voice.player` — the paced sender task (pacer on the monotonic clock).
- :mod:`voicecall.voice.listener` — inbound μ-law → VAD (barge-in) and → STT.
- :mod:`voicecall.voice.session` — :class:`VoiceSession`, one call's ``SpeechChannel``.
"""
