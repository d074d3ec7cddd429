"""Streaming speech: text-to-speech (``tts``) and speech-to-text (``stt``) providers.

- :mod:`voicecall.speech.tts.base` — ``TtsProvider``: text in, μ-law 8 kHz chunks out, streamed.
- :mod:`voicecall.speech.stt.base` — ``SttProvider`` / ``SttSession``: μ-law frames in,
  ``Transcript`` events out; sessions buffer caller audio while the service connects.
- :mod:`voicecall.speech.registry` — build the configured providers by name.
- :mod:`voicecall.speech.voices` — Polly voices for the TwiML ``<Say>`` fallback.
- :mod:`voicecall.speech.errors` — ``SpeechError`` and its kinds.
"""
