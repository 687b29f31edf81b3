"""Read any user photo as uint8 RGB, write images, and list the images named by files, folders and globs.

Why: photos arrive rotated by EXIF, greyscale, 16-bit, CMYK, with alpha or a palette, with a
wide-gamut ICC profile, truncated, or not images at all. Every later stage wants exactly one thing
(np.uint8 RGB, shape (H, W, 3)) or an `ImageError` whose one-line message and `.reason` slug a
tool can record in its report and move on. Every mode is converted to sRGB the same way for
training and inference: CMYK through its ICC profile (or Pillow's conversion), transparency
flattened on white (a cut-out face then sits on white, as `tfunmask.unmask` will see it).
Training-data tools read with `strict=True`, which skips greyscale photos: a grey face as a target
teaches a colour model to drain colour from the faces it unmasks; inference converts them.

Reasons: "unreadable" (missing, a broken link, no permission, or a folder), "not_an_image",
"truncated", "corrupt", "too_large" (a decompression bomb), "too_small", and in strict mode
"greyscale".
"""
from __future__ import annotations

import glob
import io
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_GREY_SPREAD = 6.0  # mean max-min over channels below which an RGB photo counts as greyscale
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


class ImageError(ValueError):
    """A file that cannot be used as a photo: str(e) is one line, `.reason` a short slug."""

    def __init__(self, message: str, reason: str):
        super().__init__(" ".join(str(message).split()))
        self.reason = reason

    def __reduce__(self):
        return type(self), (str(self), self.reason)


def read_image(path, *, strict: bool = False, min_size: int = 32, data: bytes | None = None) -> np.ndarray:
    """The photo at `path` as uint8 RGB (H, W, 3), upright by its EXIF orientation.

    CMYK, palette and alpha (flattened on white) are converted to RGB; greyscale is converted
    with strict=False and raises ImageError("greyscale") with strict=True (by mode or by content).
    A shorter side below `min_size` raises ImageError("too_small"). `data`, when given, is the
    file's content (read from cloud storage, say) and `path` only names it in messages.
    """
    with _open(path, data) as image:
        _check_size(path, image.size, min_size)
        _load(path, image)
        if strict:
            _check_strict(path, image)
        rgb = _to_rgb(_upright(image))
    array = np.asarray(rgb, dtype=np.uint8)
    if strict and _looks_grey(array):
        raise ImageError(f"{path}: greyscale photo (all colour channels equal)", "greyscale")
    return array


def _open(path, data: bytes | None) -> Image.Image:
    if data is None and Path(path).is_symlink() and not Path(path).exists():
        raise ImageError(f"{path}: broken symbolic link", "unreadable")
    try:
        return Image.open(path if data is None else io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (format not recognised)", "not_an_image") from None
    except OSError as error:
        if error.errno is not None:  # missing, a folder, no permission: the file system said no
            raise ImageError(f"{path}: cannot read ({error.strerror})", "unreadable") from None
        raise _decode_error(path, error) from None
    except (Image.DecompressionBombError, SyntaxError, ValueError) as error:
        raise _decode_error(path, error) from None


def _check_size(path, size: tuple[int, int], min_size: int) -> None:
    if min(size) < min_size:
        raise ImageError(f"{path}: {size[0]}x{size[1]} px is smaller than {min_size} px on the "
                         f"shorter side", "too_small")


def _load(path, image: Image.Image) -> None:
    """Decode the pixels now, so that broken files fail here with a reason."""
    try:
        image.load()
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        raise _decode_error(path, error) from None


def _decode_error(path, error: Exception) -> ImageError:
    if isinstance(error, Image.DecompressionBombError):
        return ImageError(f"{path}: too many pixels ({error})", "too_large")
    reason = "truncated" if "truncated" in str(error).lower() else "corrupt"
    return ImageError(f"{path}: {reason} image data ({error})", reason)


def _check_strict(path, image: Image.Image) -> None:
    if image.mode in _GREY_MODES:
        raise ImageError(f"{path}: greyscale image (mode {image.mode})", "greyscale")


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit sRGB; transparency is flattened on white."""
    if image.mode in _WIDE_MODES:
        return _wide_grey_to_rgb(image)
    if image.mode in ("RGB", "CMYK") and image.info.get("icc_profile"):
        return _icc_to_srgb(image)
    if "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit or float greyscale scaled to 8 bits (Pillow's own convert clips at 255)."""
    grey = np.asarray(image, dtype=np.float64)
    peak = float(grey.max(initial=0.0))
    if image.mode.startswith("I;16") or peak > 255:
        top = 65535.0
    else:
        top = 1.0 if image.mode == "F" and peak <= 1 else 255.0
    grey8 = np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey8[..., None], 3, axis=2))


def _icc_to_srgb(image: Image.Image) -> Image.Image:
    """Colour-manage an RGB/CMYK image with an embedded profile into sRGB; plain convert on failure."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image.convert("RGB")
    return converted.convert("RGB")


def _looks_grey(rgb: np.ndarray) -> bool:
    """True for an RGB photo whose channels are (nearly) equal, e.g. a black-and-white JPEG."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    sample = rgb[::step, ::step].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean()) < _GREY_SPREAD


def write_image(path, rgb: np.ndarray) -> None:
    """Write uint8 RGB (H, W, 3) to `path`; the format follows the suffix; parent folders are made.

    The file appears atomically (written beside it, then renamed), so parallel workers and
    interrupted runs never leave half-written images.
    """
    path = Path(path)
    image_format = _SAVE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: cannot write images with suffix {path.suffix!r}; "
                         f"use one of {', '.join(sorted(_SAVE_FORMATS))}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    try:
        Image.fromarray(rgb).save(partial, format=image_format, **options)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def list_images(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The files named by `inputs`: a path or glob, or an iterable of them, in order, without repeats.

    A file is listed whatever its suffix (it was named explicitly); a folder gives every non-hidden
    entry below it that is not a folder with something in it, sorted: files, broken links, links to
    folders (not followed) and empty folders, so that each reaches `read_image` and is used or
    reported as skipped, never silently passed over; a glob does the same for its matches.
    A path that does not exist, or a glob that matches nothing, raises FileNotFoundError.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    listed: dict[Path, None] = {}
    for item in inputs:
        listed.update(dict.fromkeys(_expand(item)))
    return list(listed)


def _expand(item) -> list[Path]:
    path = Path(item)
    if path.is_dir():
        return _folder_files(path)
    if path.is_file():
        return [path]
    if glob.has_magic(str(item)):
        return _glob_files(str(item))
    raise FileNotFoundError(f"{item}: no such file or folder")


def _folder_files(folder: Path) -> list[Path]:
    entries = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        entries += [Path(root, name) for name in names if not name.startswith(".")]  # broken links too
        entries += [Path(root, name) for name in dirs if Path(root, name).is_symlink()]  # not walked
        if not names and not dirs and Path(root) != folder:
            entries.append(Path(root))  # an empty folder, whatever its name
    return sorted(entries)


def _glob_files(pattern: str) -> list[Path]:
    matches = sorted(Path(match) for match in glob.glob(pattern, recursive=True))
    files = []
    for match in matches:
        files += _folder_files(match) if match.is_dir() else [match]
    if not files:
        raise FileNotFoundError(f"{pattern}: no files match")
    return files
