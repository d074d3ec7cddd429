"""speech/tts."""
