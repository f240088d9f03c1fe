"""A clear end for the other processes of a run when one of them dies or stops answering.

When a process (or a whole machine) of a distributed run is killed, the survivors' next
collective fails with a transport error of gloo / NCCL (connection reset or closed by the
peer) or, if the peer hangs, times out after ``SOLVER.DIST_TIMEOUT_S``. Those errors are
turned into :class:`PeerLostError`, whose message says what happened and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["PeerLostError", "peer_lost_errors"]

# Fragments of the messages of gloo / NCCL / c10d when a peer is gone or silent.
_PEER_LOST = (
    "Connection reset by peer",
    "Connection closed by peer",
    "Broken pipe",
    "Socket Timeout",
    "Timed out",
    "timed out",
    "NCCL communicator was aborted",
    "Watchdog caught collective operation timeout",
)


class PeerLostError(RuntimeError):
    """Another process of the distributed run died or stopped answering."""


def _is_peer_lost(exc: BaseException) -> bool:
    from torch.distributed import DistError

    text = str(exc)
    return isinstance(exc, DistError | RuntimeError) and any(m in text for m in _PEER_LOST)


@contextlib.contextmanager
def peer_lost_errors(world_size: int, timeout_s: float) -> Iterator[None]:
    """Turn the error of a collective whose peer is gone into a :class:`PeerLostError`."""
    try:
        yield
    except Exception as exc:
        if world_size <= 1 or not _is_peer_lost(exc):
            raise
        first_line = str(exc).strip().splitlines()[0][:300]
        raise PeerLostError(
            f"Another of the {world_size} processes of this run died or did not answer within "
            f"SOLVER.DIST_TIMEOUT_S={timeout_s:g} s, so this one stops too "
            f"({first_line}). See the logs of the other processes (OUTPUT_DIR/log.txt.rank<N> "
            f"and each machine's console), then start every machine again with --resume."
        ) from exc
