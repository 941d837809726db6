"""Reading the project's files and the user's images: every failure is a ValueError naming the file.

Library errors (safetensors' `SafetensorError`, a truncated zip, a JSON syntax error, a pickle the safe
loader refuses) become one line the CLI can print, instead of a traceback.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors import SafetensorError
from safetensors.torch import load_file


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (missing, truncated or not safetensors: ValueError)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None


def read_json(path: str | Path) -> dict:
    """A JSON file holding one object."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON file ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_npz(path: str | Path, keys: tuple[str, ...], expected: str) -> dict[str, np.ndarray]:
    """The given keys of an .npz archive (no pickles); `expected` describes the file for the message."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no file at {path}; expected {expected}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not readable as {expected} ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not an .npz archive; expected {expected}")
    with archive:
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise ValueError(
                f"{path}: it has keys {sorted(archive.files)}, not {missing}; expected {expected}"
            )
        try:
            return {key: archive[key] for key in keys}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} is not readable as {expected} ({error})") from None


def read_pickled_tensor(path: str | Path) -> object:
    """A file written by `torch.save`, loaded without running pickled code (`weights_only=True`)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except Exception as error:  # pickle.UnpicklingError, RuntimeError, EOFError, zipfile errors ...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path} is not a tensor file the safe loader accepts ({reason})") from None


MIN_IMAGE_SIDE = 16  # pixels


MAX_IMAGE_PIXELS = 64_000_000  # larger files are refused before they fill the memory


def load_image(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """An image file as a person sees it in a viewer: (3, H, W) float in [−1, 1], plus notes on conversions.

    EXIF orientation is applied (cameras store portrait photos sideways with a tag), palette, CMYK and
    bilevel images become RGB, alpha is composited over white, greyscale is repeated, 16-bit images are
    scaled from 65535 and float images are clipped to [0, 1] (with a note when they leave it). An
    animated image gives its first frame, with a note.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no image file at {path}")
    notes: list[str] = []
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"{path}: image is {opened.height}×{opened.width}; at most {MAX_IMAGE_PIXELS:,} pixels are accepted"
                )
            if opened.mode in ("RGB", "RGBA") and any(
                ";16" in str(tile.args[0]) for tile in opened.tile if tile.args
            ):
                raise UnidentifiedImageError  # 16-bit colour: Pillow would drop 8 bits; imageio keeps them
            if getattr(opened, "n_frames", 1) > 1:
                notes.append(f"animated image of {opened.n_frames} frames: its first frame is used")
            image = ImageOps.exif_transpose(opened)
            if image is not opened and opened.getexif().get(0x0112, 1) != 1:
                notes.append("rotated as its EXIF orientation says")
            if image.mode in ("P", "PA", "1", "CMYK", "YCbCr", "LAB", "HSV"):
                notes.append(f"{image.mode} image converted to RGB")
                image = image.convert("RGBA" if image.mode in ("P", "PA") else "RGB")
            array = np.asarray(image)
    except UnidentifiedImageError:
        array = _read_with_imageio(path)  # 16-bit RGB TIFF and others Pillow cannot open
    except (OSError, SyntaxError) as error:  # truncated or corrupt files
        raise ValueError(f"cannot read {path} as an image: {error}") from None
    if array.dtype == np.uint16 or (
        array.dtype == np.int32 and array.max() > 255
    ):  # Pillow: 16-bit grey is I
        array, notes = array / 65535.0, [*notes, "16-bit image scaled to [0, 1]"]
    elif array.dtype in (np.uint8, np.bool_):
        array = array / (1.0 if array.dtype == np.bool_ else 255.0)
    elif np.issubdtype(array.dtype, np.floating):
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if not np.isfinite(array).all() or low < 0 or high > 1:
            notes.append(f"float image with values in [{low:.3g}, {high:.3g}] clipped to [0, 1]")
        array = np.clip(np.nan_to_num(array), 0, 1)
    else:
        raise ValueError(f"{path}: unsupported pixel type {array.dtype}")
    if array.ndim == 2:
        array, notes = np.repeat(array[..., None], 3, axis=-1), [*notes, "greyscale image repeated to RGB"]
    elif array.ndim == 3 and array.shape[-1] == 2:  # greyscale + alpha
        array = np.concatenate([np.repeat(array[..., :1], 3, axis=-1), array[..., 1:]], axis=-1)
        notes.append("greyscale image repeated to RGB")
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"{path}: expected an RGB image, got an array of shape {array.shape}")
    if array.shape[-1] == 4:
        alpha = array[..., 3:]
        array, notes = array[..., :3] * alpha + (1 - alpha), [*notes, "RGBA composited over white"]
    if min(array.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"{path}: image is {array.shape[0]}×{array.shape[1]}; both sides must be at least {MIN_IMAGE_SIDE} pixels"
        )
    image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1) * 2 - 1
    return image, notes


def _read_with_imageio(path: Path) -> np.ndarray:
    import imageio.v3 as imageio

    try:
        return np.asarray(imageio.imread(path))
    except Exception as error:  # imageio raises many types for unreadable files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot read {path} as an image: {reason}") from None
