"""speech/stt."""
