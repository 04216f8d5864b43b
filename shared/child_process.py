"""Child processes that do not outlive the process that started them."""

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent() -> None:
    """For ``subprocess.Popen(preexec_fn=...)``: the child gets SIGTERM when the process that
    started it ends, even killed with SIGKILL, which leaves no chance to stop it (Linux; on
    other systems nothing). Run between fork and exec, in a process with no other threads."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
