"""Shared-memory files this process makes for its bridge: the tensor slabs and the command ring."""

import mmap
import os


def make(path, size):
    """A new file of `size` bytes at `path`, mapped, with its pages reserved now: tmpfs hands a page
    out only when it is first touched, so a /dev/shm too small for the job (a container's is 64 MB
    by default) would otherwise kill this process with SIGBUS in the middle of a collective. The
    file is removed again if that fails; the OSError says what /dev/shm has free and what to do."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            raise OSError(e.errno, _why_not(fd, path, size, e.strerror)) from None
        return mmap.mmap(fd, size)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def _why_not(fd, path, size, strerror):
    fs = os.fstatvfs(fd)
    mib = lambda n: f"{round(n / 2**20)} MiB"
    return (f"cannot reserve {mib(size)} of shared memory at {path}: {strerror}; /dev/shm has "
            f"{mib(fs.f_bavail * fs.f_frsize)} free of {mib(fs.f_blocks * fs.f_frsize)} and this needs {mib(size)}. "
            "Give the ranks more shared memory (a container's /dev/shm: docker run --shm-size=4g, or a "
            "memory-backed emptyDir on Kubernetes)")
