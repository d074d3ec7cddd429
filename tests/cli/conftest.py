"""The CLI tests use the local fakes (tests/fakes/) of the services they talk to."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
