"""Tiny random-weight models and offline tokenizers for tests and the offline demo.

Nothing here downloads anything: tokenizers are built from in-memory vocabularies
(:mod:`micon_tasks.testing.tiny_tokenizers`) and pipelines from small configs with seeded random
weights (:mod:`micon_tasks.testing.tiny_pipelines`). Import the submodules directly; this package
itself stays free of heavy imports.
"""

from __future__ import annotations
