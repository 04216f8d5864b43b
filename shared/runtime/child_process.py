"""Child processes that do not outlive the process that started them.

Linux's parent-death signal (``PR_SET_PDEATHSIG``) does it: the child gets SIGTERM when its
parent ends, even killed with SIGKILL, which leaves the parent no chance to stop it. Two
details shape the two ways below: the "parent" is the *thread* that started the child, so a
child started from a thread ends when that thread does; and the signal must be asked for in the
child, between fork and exec, where Python code (a ``preexec_fn``) is safe only in a process
with no other threads (another thread may hold a lock the child then waits on for ever).
"""

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Run by a fresh interpreter, which has no other threads, before it becomes the command (exec
# keeps the parent-death signal). If the parent ended before prctl, the child was handed to
# another process already and would never get the signal: it ends at once instead.
_ASK_THEN_EXEC = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def end_with_parent() -> None:
    """For ``subprocess.Popen(preexec_fn=...)``: the child gets SIGTERM when the process that
    started it ends, even killed with SIGKILL, which leaves no chance to stop it (Linux; on
    other systems nothing). Run between fork and exec, in a process with no other threads:
    elsewhere :func:`ending_with_parent`."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def ending_with_parent(command: Sequence[str]) -> list[str]:
    """``command`` as the child runs it so that it gets SIGTERM when the thread starting it
    ends (Linux; elsewhere ``command`` as it is): safe from any thread, as no Python code runs
    between fork and exec. A fresh interpreter asks for the signal, then becomes ``command``
    (the same process: its pid, exit code and signals are the command's), some 20 ms later."""
    if sys.platform != "linux":
        return list(command)
    return [sys.executable, "-I", "-S", "-c", _ASK_THEN_EXEC, str(os.getpid()), *command]
