# Copyright (c) muscle_mm contributors. All rights reserved.
"""Write test DICOMs: uncompressed single-frame Secondary Capture files
whose stored values, bit layout and attributes are exactly what the caller
gives (pydicom only; used by the tests, the loading benchmark and
``tools/misc/image_to_dicom.py``)."""
from typing import Optional

import numpy as np


def write_dicom(path,
                stored: np.ndarray,
                photometric: str = 'MONOCHROME2',
                bits_stored: Optional[int] = None,
                bits_allocated: Optional[int] = None,
                signed: bool = False,
                **attrs) -> str:
    """Save the 2-D array ``stored`` as the stored pixel values of a DICOM.

    Args:
        path: The ``.dcm`` file to write.
        stored: Stored values (no inversion or rescaling is applied).
        photometric: ``'MONOCHROME2'`` (high = bright) or ``'MONOCHROME1'``.
        bits_stored: ``BitsStored``; default ``bits_allocated``.
        bits_allocated: 8, 16 or 32; default the itemsize of ``stored``.
        signed: ``PixelRepresentation`` 1 (two's complement values).
        **attrs: More data elements, e.g. ``RescaleSlope=2``,
            ``WindowCenter=40``.

    Returns:
        ``str(path)``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (ExplicitVRLittleEndian,
                             SecondaryCaptureImageStorage, generate_uid)
    stored = np.asarray(stored)
    if stored.ndim != 2:
        raise ValueError(f'expected a 2-D image, got shape {stored.shape}')
    bits_allocated = bits_allocated or 8 * stored.dtype.itemsize
    if bits_allocated not in (8, 16, 32):
        raise ValueError(f'bits_allocated must be 8, 16 or 32, got '
                         f'{bits_allocated}')
    bits_stored = bits_stored or bits_allocated
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = 'OT'
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)
    for key, value in attrs.items():
        setattr(ds, key, value)
    dtype = f'<{"i" if signed else "u"}{bits_allocated // 8}'
    ds.PixelData = np.ascontiguousarray(stored).astype(dtype).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return str(path)
