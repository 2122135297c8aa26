"""Small file systems for fault tests: root mounts a tmpfs where a test needs a full or read-only disk."""

import contextlib
import subprocess


@contextlib.contextmanager
def tmpfs(path, size: str, read_only: bool = False):
    """A tmpfs of ``size`` (``1m``, ``64m``) mounted on the new folder ``path`` for the block."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        # Lazy: Ray's workers may still hold a trial folder open for a moment after a search ended;
        # the file system goes once they let go.
        subprocess.run(["umount", "--lazy", str(path)], check=True)
