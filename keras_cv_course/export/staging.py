"""Writing an export folder all at once, or not at all.

An export is built in a hidden staging folder beside its destination,
``.NAME.tmp-PID``, and renamed into place when every artifact has passed
its gate. The rename holds an ``flock`` on the parent folder, so two
exports to one folder at once end with one complete export. Staging
folders of killed exports (their process is gone) are removed by the next
export to the same place.
"""

import contextlib
import fcntl
import os
import re
import shutil

from keras_cv_course.errors import KCCError


def staging_dir(out_dir):
    """A fresh hidden folder beside ``out_dir``, named after this process.

    Staging folders left by killed exports (their process is gone) are
    removed first.

    Raises:
        KCCError: the parent folder cannot be created or written.
    """
    parent = os.path.dirname(os.path.abspath(out_dir))
    name = os.path.basename(os.path.abspath(out_dir))
    try:
        os.makedirs(parent, exist_ok=True)
        remove_stale_staging(parent, name)
        staging = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
    except OSError as error:
        raise KCCError(f"cannot write the export folder {out_dir!r}: "
                       f"{error.strerror or error}") from None
    return staging


def remove_stale_staging(parent, name):
    """Removes ``.NAME.tmp-PID`` folders in ``parent`` whose process no longer runs.

    Returns:
        The removed paths.
    """
    pattern = re.compile(rf"^\.{re.escape(name)}\.tmp-(\d+)(\.old)?$")
    removed = []
    for entry in os.listdir(parent):
        match = pattern.match(entry)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            removed.append(os.path.join(parent, entry))
    return removed


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def move_into_place(staging, out_dir, overwrite):
    """Renames the finished folder into place, under a lock on the parent folder.

    Raises:
        KCCError: without ``overwrite``, another export wrote ``out_dir``
            while this one ran.
    """
    with _locked(os.path.dirname(os.path.abspath(out_dir))):
        retired = None
        if os.path.exists(out_dir):
            if not overwrite:
                raise KCCError(f"export folder {out_dir!r} was written by another export while "
                               "this one ran; kept that one (pass overwrite=True to replace it)")
            retired = f"{staging}.old"
            os.replace(out_dir, retired)
        os.replace(staging, out_dir)
    if retired:
        shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def _locked(folder):
    """An exclusive ``flock`` on a folder, held for the ``with`` block; it writes no file."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
