"""The run configuration: what a run was asked to do, and the check that an output folder matches it.

Why a stored ``run_config.json``: every stage resumes from the files already in the output folder,
which is only sound when those files were made by the same configuration. Fields that decide what an
image or a verdict looks like are its *identity*; a run whose identity differs from the stored one is
refused with a message naming each difference (``--overwrite`` replaces the folder instead). Fields
that only select or schedule work (tasks, limit, batch sizes, concurrency) may change between runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.hashing import sha256_json
from micon_tasks.secrets import check_env_names, is_secret_name, value_problem

__all__ = [
    "RunConfig",
    "case_seed",
    "image_seed",
    "sanitize_model_name",
    "model_dir_name",
    "config_diff",
    "RUNTIME_ONLY_ARGS",
    "RUN_CONFIG_FILE",
    "fingerprint",
    "refuse_secrets",
    "per_suite_args",
]

RUN_CONFIG_FILE = "run_config.json"

#: Adapter / judge arguments that change how fast a run goes, never what it produces.
RUNTIME_ONLY_ARGS = frozenset(
    {"batch_size", "concurrency", "timeout", "max_retries", "max_wait", "cache_path", "api_key_env", "cpu_offload",
     "local_files_only",
     # where a served judge runs, not what it is (its model id is identity; provenance records the host)
     "base_url",
     # removed retry settings (refused now), kept so a folder made before still compares equal
     "retry_base_delay", "retry_max_delay", "backoff", "max_backoff"}
)

_UNSAFE = re.compile(r'[<>:"/\\|?*\[\]\s]')


def sanitize_model_name(name: str) -> str:
    """lm-eval's rule: characters unsafe in a folder name become ``__``."""
    return _UNSAFE.sub("__", str(name)) or "model"


def model_dir_name(model: str, dar: bool) -> str:
    return sanitize_model_name(model) + ("__dar" if dar else "")


def case_seed(seed: int | None, task: str, case_id: str) -> int | None:
    """A per-case seed from (seed, task, case_id): independent of sharding, order and process count."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}/{task}/{case_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def image_seed(seed: int | None, task: str, case_id: str, k: int = 0) -> int | None:
    """The seed of a case's image k: the case's seed for image 0, else one from (seed, task, case_id, k)."""
    if seed is None or k == 0:
        return case_seed(seed, task, case_id)
    digest = hashlib.sha256(f"{seed}/{task}/{case_id}/{k}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object."""
    return sha256_json(obj)[:16]


def refuse_secrets(args: Mapping[str, Any], what: str, _prefix: str = "") -> None:
    """Arguments are written to run_config.json and results.json: a secret must come from the environment.

    Refuses secret-looking names (``api_key``, ``token``, ``access_key``, ``auth``, ``bearer``, ...)
    holding a value, URLs with credentials or key-like query parameters, and authorization header
    values, in nested objects too. The messages name the argument, never its value.
    """
    for key, value in args.items():
        name = f"{_prefix}{key}"
        if str(key).lower().endswith("_env") and value is not None:
            check_env_names(value, f"{what}: {name!r}")  # never the key itself (refused without echoing it)
        if is_secret_name(key) and value is not None and not isinstance(value, bool):
            raise ConfigError(
                f"{what}: {name!r} looks like a secret; results record every argument, so pass the name of an "
                f"environment variable instead (e.g. api_key_env=MY_KEY_VARIABLE)"
            )
        problem = value_problem(value)
        if problem:
            raise ConfigError(f"{what}: {name!r} {problem}; put the secret in the environment instead")
        if isinstance(value, Mapping):
            refuse_secrets(value, what, f"{name}.")
        elif isinstance(value, (list, tuple)):
            for n, item in enumerate(value):
                if isinstance(item, Mapping):
                    refuse_secrets(item, what, f"{name}[{n}].")
                elif value_problem(item):
                    raise ConfigError(f"{what}: {name}[{n}] {value_problem(item)}; put the secret in the environment instead")


def _refuse_non_finite(args: Mapping[str, Any], what: str, _prefix: str = "") -> None:
    """NaN or Infinity in an argument: refused before anything is recorded (NaN != NaN would refuse every
    resume of the folder as "another configuration")."""
    import math

    for key, value in args.items():
        name = f"{_prefix}{key}"
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{what}: argument {name!r} must be a finite number")
        if isinstance(value, Mapping):
            _refuse_non_finite(value, what, f"{name}.")


def _identity_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(args.items()) if k not in RUNTIME_ONLY_ARGS}


@dataclass
class RunConfig:
    """Everything a run was asked to do. ``model_args`` etc. are parsed dicts (never secrets: keys come
    from environment variables the adapters and judges name)."""

    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    source: str = "hub"
    dataset_path: str | None = None
    include_path: str | None = None
    # Official templates replacing checkpoint sets: {task: absolute file}. Given as task=FILE pairs, a folder
    # or one file (one selected task), it is resolved once here (micon_tasks.checkpoints.resolve_checkpoints_from).
    checkpoints_from: dict[str, str] | str | list[str] | None = None
    limit: int | float | None = None
    seed: int | None = 0
    dar: dict[str, Any] | None = None  # the resolved DARConfig as a dict; None = off
    judge: str | dict[str, str] | None = None  # one judge, or one per suite ({"micon": "openai", ...})
    judge_args: dict[str, Any] = field(default_factory=dict)  # per suite ({suite: {...}}) when judge is a mapping
    batch_size: int = 1
    predict_only: bool = False
    num_images: int | None = None  # images per case; None: each task card's ``num_images`` (1 unless it says)

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("a model is required (--model)")
        refuse_secrets(self.model_args, "--model_args")
        refuse_secrets(self.judge_args, "--judge_args")
        _refuse_non_finite(self.model_args, "--model_args")
        _refuse_non_finite(self.judge_args, "--judge_args")
        if self.limit is not None:
            if isinstance(self.limit, bool) or not isinstance(self.limit, (int, float)) or self.limit <= 0:
                raise ConfigError(f"limit must be a positive integer or a fraction in (0, 1), got {self.limit!r}")
            if isinstance(self.limit, float) and self.limit >= 1:
                if not self.limit.is_integer():
                    raise ConfigError(f"limit {self.limit} is neither a whole number of cases nor a fraction below 1")
                self.limit = int(self.limit)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ConfigError(f"seed must be an integer or None, got {self.seed!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.tasks:
            raise ConfigError("no task selected (--tasks)")
        if not self.checkpoints_from:
            self.checkpoints_from = None
        else:
            from micon_tasks.checkpoints import resolve_checkpoints_from

            self.checkpoints_from = resolve_checkpoints_from(self.checkpoints_from, self.tasks) or None
        if self.num_images is not None and (isinstance(self.num_images, bool) or not isinstance(self.num_images, int)
                                            or self.num_images < 1):
            raise ConfigError(f"num_images must be a positive integer, got {self.num_images!r}")

    def selection(self) -> tuple[tuple[str, ...], int | float | None]:
        """Which cases the run selects: (tasks, limit)."""
        return tuple(self.tasks), self.limit

    def describe_selection(self) -> str:
        return f"tasks {', '.join(self.tasks)}, limit {self.limit}"

    def widest_selection(self, other: RunConfig) -> dict[str, Any]:
        """The union of this selection and ``other``'s: tasks in first-seen order, the wider limit (None: all;
        a count and a fraction cannot be compared, so together they mean all)."""
        tasks = [*self.tasks, *(t for t in other.tasks if t not in self.tasks)]
        a, b = self.limit, other.limit
        if a is None or b is None or isinstance(a, float) != isinstance(b, float):
            limit = None
        else:
            limit = max(a, b)
        return {"tasks": tasks, "limit": limit}

    def images_for(self, task: Any) -> int:
        """How many images each case of ``task`` gets: ``--num_images``, else the task card's."""
        return self.num_images if self.num_images is not None else int(task.config.num_images)

    @property
    def dir_name(self) -> str:
        return model_dir_name(self.model, self.dar is not None)

    def generation_identity(self) -> dict[str, Any]:
        """What decides the generated images."""
        return {
            "model": self.model,
            "model_args": _identity_args(self.model_args),
            "source": self.source,
            "dataset_path": self.dataset_path,
            "include_path": self.include_path,
            "seed": self.seed,
            "dar": self.dar,
            # recorded only when asked for, so runs made before the option keep their identity
            **({"num_images": self.num_images} if self.num_images is not None else {}),
        }

    def judge_identity(self) -> dict[str, Any] | None:
        """What decides the verdicts (None when the run only generates)."""
        if self.judge is None:
            return None
        if isinstance(self.judge, dict):
            args = {suite: _identity_args(self.judge_args.get(suite) or {}) for suite in sorted(self.judge)}
            return {"judge": dict(sorted(self.judge.items())), "judge_args": args, "checkpoints_from": self.checkpoints_from}
        return {"judge": self.judge, "judge_args": _identity_args(self.judge_args), "checkpoints_from": self.checkpoints_from}

    def judge_key(self, task: Any) -> str | None:
        """Which judge scores ``task``: None for the run's one judge, else its suite (or its own name) when
        ``judge`` names one judge per suite; a task no judge covers is refused, naming it."""
        if not isinstance(self.judge, dict):
            return None
        for key in (task.suite, task.name):
            if key in self.judge:
                return key
        raise ConfigError(f"task {task.name!r} (suite {task.suite!r}) has no judge in --judge "
                          f"{','.join(f'{k}={v}' for k, v in self.judge.items())}; add {task.suite or task.name}=NAME")

    def judge_spec(self, key: str | None) -> tuple[str, dict[str, Any]]:
        """(judge name, its arguments) for a key of :meth:`judge_key`."""
        if key is None:
            return str(self.judge), dict(self.judge_args)
        return self.judge[key], dict(self.judge_args.get(key) or {})  # type: ignore[index]

    def limit_count(self, n: int) -> int:
        """How many of ``n`` cases the limit keeps (a fraction rounds up to at least one case)."""
        if self.limit is None:
            return n
        if isinstance(self.limit, float):
            import math

            return min(n, max(1, math.ceil(n * self.limit)))
        return min(n, int(self.limit))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def per_suite_args(args: str | Mapping[str, Any] | None, suites: list[str], *, what: str = "--judge_args") -> dict[str, Any]:
    """Judge arguments for one judge per suite: ``micon=base_url=http://h:8000/v1,xversebench=device=cuda:0``
    (each item ``suite=key=value``) or JSON ``{"micon": {...}, ...}``; every suite must be one ``--judge`` names."""
    from micon_tasks.argstr import coerce_value, parse_args_string

    out: dict[str, dict[str, Any]] = {}
    if isinstance(args, Mapping) or (isinstance(args, str) and args.strip().startswith("{")):
        parsed = parse_args_string(args, what=what)
        for suite, value in parsed.items():
            if not isinstance(value, Mapping):
                raise ConfigError(f"{what}: with one judge per suite, give each suite's arguments as an object "
                                  f"(suite {suite!r} has a {type(value).__name__})")
            out[str(suite)] = dict(value)
    elif args:
        for n, item in enumerate(p for p in args.split(",") if p.strip()):
            suite, sep, rest = item.strip().partition("=")
            key, sep2, value = rest.partition("=")
            if not sep or not sep2 or not key.strip():
                raise ConfigError(f"{what}: item {n + 1} is not suite=key=value (one judge per suite)")
            out.setdefault(suite.strip(), {})[key.strip()] = coerce_value(value)
    unknown = sorted(set(out) - set(suites))
    if unknown:
        raise ConfigError(f"{what}: {', '.join(map(repr, unknown))} is not a suite --judge names ({', '.join(suites)})")
    return out


def config_diff(old: dict[str, Any] | None, new: dict[str, Any] | None, prefix: str = "") -> list[str]:
    """Human-readable differences between two identity dicts: ``model_args.steps: 50 -> 20``.

    Values of secret-looking keys, and URLs carrying credentials, are never shown (``(hidden)``).
    """
    if old == new:
        return []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [f"{prefix or 'value'}: {_show(old, prefix)} -> {_show(new, prefix)}"]
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}.{key}" if prefix else key
        if key not in old:
            out.append(f"{name}: (unset) -> {_show(new[key], key)}")
        elif key not in new:
            out.append(f"{name}: {_show(old[key], key)} -> (unset)")
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            out.extend(config_diff(old[key], new[key], name))
        elif old[key] != new[key]:
            out.append(f"{name}: {_show(old[key], key)} -> {_show(new[key], key)}")
    return out


def _carries_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any((is_secret_name(k) and v is not None and not isinstance(v, bool)) or _carries_secret(v)
                   for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_carries_secret(v) for v in value)
    return value_problem(value) is not None


def _show(value: Any, key: Any = "") -> str:
    last = str(key).rsplit(".", 1)[-1]
    if (is_secret_name(last) and value is not None and not isinstance(value, bool)) or _carries_secret(value):
        return "(hidden)"
    return json.dumps(value, sort_keys=True, default=str)


def load_run_config(model_dir: str | Path) -> dict[str, Any] | None:
    path = Path(model_dir) / RUN_CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); remove it or run with --overwrite") from None
