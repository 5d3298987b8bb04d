"""The link between a tuner and the process of one isolated trial: the trial process dies
with the tuner. Light on purpose: it runs first in the child, before TensorFlow loads."""

from __future__ import annotations

import os
import signal

__all__ = ["TRIAL_PARENT", "die_with_parent"]

#: the tuner's pid, given to an isolated trial's process so it can follow the tuner's death
TRIAL_PARENT = "CXR_KERAS_TRIAL_PARENT"


def die_with_parent() -> None:
    """Linux, in an isolated trial's process: be killed when the tuner process dies (no
    orphans). Set here, in the child, rather than by ``preexec_fn``: Python code between
    fork and exec in the tuner, whose gRPC threads (distributed search) hold locks and
    file descriptors, aborted the child now and then (exit -6). A tuner that died before
    this ran has already left: exit at once."""
    parent = int(os.environ.get(TRIAL_PARENT, "0"))
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:
        os._exit(1)
