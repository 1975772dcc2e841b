"""Checking image files before anything is trained or written.

A folder of a user's images is read in full before training starts: one
corrupt file found in epoch 3 would otherwise stop the run halfway with an
error that names no file. ``inspect_image`` opens one file with Pillow and
says what is wrong with it, if anything; ``check_image_files`` does it for
a whole list and either raises one line naming the first bad files or
drops them (``skip_bad=True``).

What counts as bad:

====================  ==========================================================
problem               example
====================  ==========================================================
unreadable            no read permission
not an image          ``notes.txt`` in a class folder
unsupported format    TIFF or WebP, which ``tf.io.decode_image`` cannot decode
corrupt               a truncated PNG or JPEG
too small             smaller than ``MIN_IMAGE_SIDE`` pixels on a side
too large             more than ``MAX_IMAGE_PIXELS`` pixels (a decompression bomb)
odd channel count     a grey image in an RGB folder, unless channels were chosen
====================  ==========================================================
"""

import dataclasses
import warnings

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.specs import MIN_IMAGE_SIDE

DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
"""Pillow's names of the formats ``tf.io.decode_image`` decodes."""
MAX_IMAGE_PIXELS = 89_478_485
"""Pillow's own decompression-bomb limit: a 1 GB RGBA image."""
CHANNELS_OF_MODE = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 1, "P": 3, "RGB": 3,
                    "YCbCr": 3, "CMYK": 3, "RGBA": 3, "PA": 3}
"""Channels an image of each Pillow mode becomes: alpha is dropped, palettes become RGB."""


@dataclasses.dataclass(frozen=True)
class ImageReport:
    """What ``inspect_image`` found: the problem (or ``None``) and the channel count."""

    path: str
    problem: str | None
    channels: int | None = None


def inspect_image(path, max_pixels=MAX_IMAGE_PIXELS):
    """Opens one file and reports whether it is a usable image.

    Args:
        path: the file.
        max_pixels: larger images are refused before they are decoded.

    Returns:
        An ``ImageReport``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return _inspect_open_image(path, image, max_pixels)
    except PermissionError:
        return ImageReport(path, "unreadable (permission denied)")
    except UnidentifiedImageError:
        return ImageReport(path, "not an image file")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return ImageReport(path, f"too large (more than {max_pixels:,} pixels)")
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying "corrupt"
        return ImageReport(path, f"corrupt ({_first_line(error)})")


def _inspect_open_image(path, image, max_pixels):
    width, height = image.size
    if image.format not in DECODABLE_FORMATS:
        return ImageReport(path, f"unsupported format {image.format} "
                                 f"(use {', '.join(DECODABLE_FORMATS)})")
    if width * height > max_pixels:
        return ImageReport(path, f"too large ({width}x{height} pixels, more than "
                                 f"{max_pixels:,})")
    if min(width, height) < MIN_IMAGE_SIDE:
        return ImageReport(path, f"too small ({width}x{height}; at least "
                                 f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels)")
    image.load()  # decodes every pixel: truncated and corrupt files fail here
    return ImageReport(path, None, CHANNELS_OF_MODE.get(image.mode, 3))


def check_image_files(files, where, channels=None, skip_bad=False):
    """Checks every file; returns the indices of the good ones and the skipped reports.

    Args:
        files: paths of image files.
        where: what the files are, for the message, e.g. ``"folder:imgs"``.
        channels: the channel count the user asked for. ``None`` means the
            folder's own: then images whose channel count differs from the
            majority's are bad, since converting them silently would mix
            colour and grey examples.
        skip_bad: drop bad files instead of raising.

    Returns:
        ``(good_indices, skipped)``: an int array and a list of ``ImageReport``.

    Raises:
        KCCError: one line naming the first bad files and how many there are.
    """
    reports = [inspect_image(str(path)) for path in files]
    reports = _mark_odd_channels(reports) if channels is None else reports
    bad = [report for report in reports if report.problem]
    if bad and not skip_bad:
        named = "; ".join(f"{report.path!r}: {report.problem}" for report in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise KCCError(f"{where} has {len(bad)} bad image file{'s' * (len(bad) > 1)} of "
                       f"{len(files)}: {named}{more}; fix or remove them, or pass "
                       "--skip-bad-images (skip_bad_images=True)")
    good = np.asarray([index for index, report in enumerate(reports) if not report.problem],
                      dtype="int64")
    return good, bad


def _mark_odd_channels(reports):
    counts = {}
    for report in reports:
        if report.channels is not None:
            counts[report.channels] = counts.get(report.channels, 0) + 1
    if len(counts) < 2:
        return reports
    majority = max(counts, key=counts.get)
    return [dataclasses.replace(report, problem=(
        f"has {report.channels} channel(s), most images have {majority}; pass --channels "
        f"{majority} to convert every image")) if report.channels not in (None, majority)
        else report for report in reports]


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
