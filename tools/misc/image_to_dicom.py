# Copyright (c) muscle_mm contributors. All rights reserved.
"""Write a grey image as an uncompressed single-frame DICOM, e.g. to try
``tools/infer.py`` on a DICOM made from a demo image:

    python tools/misc/image_to_dicom.py IMAGE OUT.dcm [--monochrome1]

8-bit images give 8-bit DICOM, 16-bit PNG 16-bit DICOM; ``--monochrome1``
stores the inverted values with ``PhotometricInterpretation=MONOCHROME1``
(air bright in the stored values), which ``LoadXrayImage`` inverts back.
"""
import argparse

import cv2
import numpy as np

from muscle_mm import testing


def write_dicom(grey: np.ndarray, path: str, monochrome1: bool = False) -> str:
    """Save a 2-D uint8/uint16 image as a DICOM of its bit depth; with
    ``monochrome1`` the values are stored inverted, as MONOCHROME1."""
    if grey.ndim != 2 or grey.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'expected a 2-D uint8 or uint16 image, got '
                         f'{grey.dtype} of shape {grey.shape}')
    if monochrome1:
        return testing.write_dicom(path, np.iinfo(grey.dtype).max - grey,
                                   'MONOCHROME1')
    return testing.write_dicom(path, grey)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='PNG or JPEG (colour becomes grey)')
    parser.add_argument('out', help='the .dcm file to write')
    parser.add_argument(
        '--monochrome1',
        action='store_true',
        help='store inverted values as MONOCHROME1')
    args = parser.parse_args()
    img = cv2.imread(args.image, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f'cannot read {args.image} as an image')
    if img.ndim == 3:
        img = cv2.cvtColor(
            img,
            cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    print(write_dicom(img, args.out, args.monochrome1))


if __name__ == '__main__':
    main()
