"""Judge prompt templates (package data): plain text with ``$name`` placeholders (string.Template).

The file name carries the version (``checkpoints_v1.txt``); a changed wording gets a new file, so the
sha256 recorded in every result always names one exact text.
"""
