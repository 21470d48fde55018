"""A few hundred KB of disk held back for the worker's last words.

When the disk fills up, writing the final status, the state event and the log lines needs a little
space too; without it the worker dies mid-handler (its status then reads `interrupted`) and
train.log is cut. The worker holds a preallocated file in its run folder and deletes it first
thing when it meets a full disk, which frees exactly that much on the same filesystem.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RESERVE_FILE = ".disk-reserve"
RESERVE_BYTES = 512 << 10  # status.json ~1 KB, a state event, a traceback and a few log lines


class DiskReserve:
    def __init__(self, folder: Path, size: int = RESERVE_BYTES):
        self.path = Path(folder) / RESERVE_FILE
        self.size = size
        self.held = False

    def hold(self) -> bool:
        """Allocate the reserve (real blocks, not a sparse file). False when the disk is already too full."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, self.size)
                except OSError as e:
                    if e.errno not in (95, 22):  # EOPNOTSUPP / EINVAL: the filesystem cannot, so write zeros
                        raise
                    os.pwrite(fd, b"\0" * self.size, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            self.release()
            return False
        self.held = True
        return True

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.held = False
