"""Imported by every Python process of a test's search that has this folder on PYTHONPATH (the driver, Ray's workers).

With ``RESNET_HPO_TEST_HOLD_UPLOAD=DIR``, a trial's upload of a checkpoint to the storage path is
held open half-written: the checkpoint file is cut to half its size, ``DIR/uploading-*`` names it,
and the upload waits there, so that a test can signal the search while a checkpoint is being written.
The test waits for the file, never for time; the hold ends when the signal kills the worker.
"""

import os

_HOLD = os.environ.get("RESNET_HPO_TEST_HOLD_UPLOAD")

if _HOLD:
    import time
    from pathlib import Path

    import ray.train._internal.storage as _storage  # tests may patch Ray's internals; the project may not

    _copy = _storage._pyarrow_fs_copy_files

    def _held_copy(source, destination, *args, **kwargs):
        _copy(source, destination, *args, **kwargs)
        if "/checkpoint_" not in str(destination):
            return
        for f in Path(destination).glob("*.pt"):
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        Path(_HOLD, f"uploading-{os.getpid()}").write_text(str(destination))
        time.sleep(600)  # held, not a synchronisation: the test's signal ends this worker first
        _copy(source, destination, *args, **kwargs)

    _storage._pyarrow_fs_copy_files = _held_copy
