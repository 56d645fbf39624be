"""Data parallelism through the launchers people already use (``torchrun``, ``accelerate launch``).

Both launchers export ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT``;
that is all this module reads. Cases are sharded ``rank::world_size``; each rank writes its own shard
files; the only collective is :meth:`Dist.sync`, an all-gather of each rank's status at the end of a
stage, so a rank that fails *reaches* the sync point with its error and every rank stops with it
(instead of the others hanging in a barrier, lmms-eval's known deadlock). The process group uses gloo
(CPU tensors only), which works beside NCCL models on GPUs; its timeout bounds a rank that died hard.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from micon_tasks.errors import MiconError

__all__ = ["Dist", "RankFailedError", "from_env"]

log = logging.getLogger(__name__)


class RankFailedError(MiconError):
    """Another rank (or this one) failed a stage; the message carries the failing rank's error."""

    exit_code = 1


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list[Any]) -> list[Any]:
        """This rank's items: ``items[rank::world_size]``."""
        return items[self.rank :: self.world_size]

    def sync(self, stage: str, error: BaseException | None = None) -> None:
        """End of a stage: every rank reports ok or its error; raise on every rank if any failed."""
        if self.world_size == 1:
            if error is not None:
                raise error
            return
        import torch.distributed as dist

        mine = None if error is None else f"{type(error).__name__}: {error}"
        statuses: list[Any] = [None] * self.world_size
        dist.all_gather_object(statuses, mine)
        failed = [(r, s) for r, s in enumerate(statuses) if s is not None]
        if not failed:
            return
        if error is not None:
            raise error  # this rank's own error keeps its type (and traceback for bugs)
        rank, message = failed[0]
        raise RankFailedError(f"rank {rank} of {self.world_size} failed during {stage}: {message}")


    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """``with dist.stage("generation"): ...``: every rank runs the block, then all meet; an error on any
        rank is raised on every rank (see :meth:`sync`)."""
        error: BaseException | None = None
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - reported to every rank by sync
            error = exc
        self.sync(name, error)

    def close(self) -> None:
        if self._group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._group = False


def from_env(timeout_s: float | None = None) -> Dist:
    """Rank and world size from the launcher's environment; joins a gloo group when world_size > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    if world <= 1:
        return Dist(0, 1, 0)
    if not 0 <= rank < world:
        raise MiconError(f"RANK={rank} is outside WORLD_SIZE={world}")
    import torch
    import torch.distributed as dist

    if timeout_s is None:
        timeout_s = float(os.environ.get("MICON_DIST_TIMEOUT", "1800"))
    created = False
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s))
        created = True
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(local % torch.cuda.device_count())  # one GPU per process: "cuda" means ours
    log.info("rank %d of %d (local rank %d)", rank, world, local)
    return Dist(rank, world, local, created)
