"""A gzipped image's data read into one array: inflated by ISA-L when it is installed, in
steps, so that no second copy of the data is held while inflating.

nibabel reads a ``.nii.gz`` through Python's :mod:`gzip` (zlib), about 40 % of a 2 mm fit,
and its one ``readinto`` call makes the gzip reader return the whole inflated run as one
bytes object before copying it into the array: twice the run's size at the peak. Here the
array is filled in steps of :data:`STEP_BYTES`, and the ``isal`` package's
:mod:`isal.igzip` (when installed) inflates the same bytes 1.8-2x faster than zlib. The
data are still read by nibabel's own :class:`~nibabel.arrayproxy.ArrayProxy` (offset, type,
byte order, layout and scaling all nibabel's), given an open file instead of the file's
name: only the inflating differs. Uncompressed files, which nibabel maps into memory, and
images in memory are read by nibabel as before.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
from nibabel.arrayproxy import ArrayProxy

#: Bytes inflated per step into the array being read.
STEP_BYTES = 1 << 24


def gzip_open():
    """``isal.igzip.open`` when the ``isal`` package is installed, else :func:`gzip.open`."""
    try:
        from isal import igzip
    except ImportError:
        return gzip.open
    return igzip.open


class SteppedReader(io.IOBase):
    """A read-only file whose ``readinto`` fills the buffer :data:`STEP_BYTES` at a time.

    Parameters
    ----------
    handle : file object
        An open (gzip) file; ``read``, ``seek`` and ``tell`` are its own.
    """

    def __init__(self, handle):
        super().__init__()
        self.handle = handle

    def readable(self) -> bool:
        return True

    def read(self, size=-1):
        return self.handle.read(size)

    def seek(self, offset, whence=0):
        return self.handle.seek(offset, whence)

    def tell(self):
        return self.handle.tell()

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` from the file; returns the bytes read (fewer at the file's end)."""
        with memoryview(buffer) as view, view.cast("B") as target:
            done = 0
            while done < len(target):
                count = self.handle.readinto(target[done:done + STEP_BYTES])
                if not count:
                    break
                done += count
        return done


def stored_data(img) -> np.ndarray:
    """The data of a nibabel image, as ``np.asanyarray(img.dataobj)`` gives them.

    A gzipped file (``.nii.gz``, ``.img.gz``) behind nibabel's plain array proxy is read
    through :class:`SteppedReader` (inflated by ISA-L when ``isal`` is installed); any other
    image (uncompressed, in memory, another proxy) is read by nibabel.

    Parameters
    ----------
    img : nibabel image

    Returns
    -------
    data : ndarray
        Same values, type, layout and shape as nibabel's.

    Raises
    ------
    OSError or EOFError
        A gzipped file whose CRC does not match its data, or that ends early.
    """
    proxy = img.dataobj
    path = getattr(proxy, "file_like", None)
    if type(proxy) is not ArrayProxy or not isinstance(path, str) or \
            not path.lower().endswith(".gz"):
        return np.asanyarray(proxy)
    spec = (proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)
    with gzip_open()(path, "rb") as handle:
        data = np.asanyarray(ArrayProxy(SteppedReader(handle), spec, mmap=False,
                                        order=proxy.order))
        # read on to the end, where gzip checks the data's CRC: a file damaged within its
        # data raises rather than giving other values (nibabel stops at the data's end)
        while handle.read(STEP_BYTES):
            pass
    return data
