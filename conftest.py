"""Makes the repository root importable when pytest runs from a checkout without an install."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
