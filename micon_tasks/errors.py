"""Errors that name what went wrong: the task, the case and the field."""

from __future__ import annotations


class MiconError(Exception):
    """Base class of every error micon-bench raises on purpose."""


class ConfigError(MiconError, ValueError):
    """A task config, YAML file or argument string is malformed."""


class DataSourceError(MiconError):
    """A data source cannot be read (offline with nothing cached, unknown layout, ...)."""


class PathEscapeError(MiconError, ValueError):
    """A path read from a data file points outside its data root."""


class CaseValidationError(MiconError, ValueError):
    """A case record breaks the case schema (or a rule the schema cannot express)."""

    def __init__(self, task: str, case_id: str, field: str, rule: str):
        self.task, self.case_id, self.field, self.rule = task, case_id, field, rule
        super().__init__(f"task {task!r}, case {case_id!r}, field {field!r}: {rule}")
