"""Adapters for the paper's open models that are not pip packages: OmniGen2, BAGEL and UNO.

Each imports its model's own inference code from a checkout of the upstream repository given by
``code_path=`` (or ``MICON_OMNIGEN2_CODE`` / ``MICON_BAGEL_CODE`` / ``MICON_UNO_CODE``) and hooks DAR
into that code's attention. Importing this package imports neither torch nor any upstream code.
"""

from __future__ import annotations

from adapters.upstream import bagel, omnigen2, uno  # noqa: F401  (each module registers its adapter)

__all__ = ["bagel", "omnigen2", "uno"]
