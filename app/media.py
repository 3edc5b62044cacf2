"""Images and video for the showcase: recognise and decode uploads, draw results on them, run a
video through a service frame by frame, and write the annotated video so browsers can play it.

- `sniff(data)` names a format by its magic bytes; `decode_image(data)` gives a BGR array or raises
  `MediaError` saying why not (unknown, truncated, corrupt, too large); `encode_jpeg` / `to_png`;
  `encode_raw` wraps the pixels themselves as a raw frame (NumPy's NPY format), which runners take
  beside JPEG and PNG (orchestration/runner/images.py).
- `draw(image, task, output)` draws a result of the shapes in DESIGN.md §2 on a copy of the image.
- `probe_video(path)` → `VideoInfo`; `run_video(path, predict, …)` → `VideoRun`: frames are decoded,
  sent as JPEG (or raw, to a service on the same host) to `predict` with several calls in flight,
  drawn in frame order and encoded as
  H.264/yuv420p in an MP4 with its index first (faststart). The encoder is libx264 from the PyAV
  wheel, fed in memory. `frame_summary` turns per-frame outputs into rows for charts.

Nothing here holds global state: the service call, progress callback and cancel event are passed in.
The one exception is OpenCV's own thread count, which `run_video(opencv_threads=1)` lowers for the
length of a run (see there).
"""
from __future__ import annotations

import contextlib
import functools
import io
import math
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from app.errors import AlgoStageError, Message
from orchestration.runner import images as runner_images

Color = tuple[int, int, int]
Predict = Callable[[bytes], dict]
FRAME_FORMATS = ("jpeg", "raw")   # how run_video sends frames: see run_video
Progress = Callable[[int, int], None]

# Tableau 10, as BGR.
DEFAULT_PALETTE: tuple[Color, ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp", "image/tiff",
                         "image/jp2", "image/avif"})   # what OpenCV here decodes
DEFAULT_MAX_PIXELS = 40_000_000
CANCEL_POLL_S = 0.1


class MediaError(AlgoStageError):
    """Input that cannot be used as an image or video; the message says why, for the user."""
    code = "bad_media"


# --- formats -------------------------------------------------------------------------------------

def sniff(data: bytes) -> str | None:
    """MIME type of `data` from its first bytes, or None when the format is not one we know.
    Images: jpeg png gif bmp webp tiff jp2 avif heic; video: x-msvideo mp4 quicktime webm
    x-matroska x-flv mp2t mpeg."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] in _RIFF_TYPES:
        return _RIFF_TYPES[head[8:12]]
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "image/jp2"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head else "video/x-matroska"
    return _sniff_rare(bytes(data[:377]))


_RIFF_TYPES = {b"AVI ": "video/x-msvideo", b"WEBP": "image/webp"}
_FTYP_BRANDS = {b"qt  ": "video/quicktime", b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic",
                b"heix": "image/heic", b"mif1": "image/heic", b"msf1": "image/heic"}


def _sniff_rare(head: bytes) -> str | None:
    if head.startswith(b"BM") and len(head) >= 26 and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if head.startswith(b"FLV\x01"):
        return "video/x-flv"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "video/mpeg"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "video/mp2t"
    return None


def looks_like_text(data: bytes) -> bool:
    """True when the first KiB is UTF-8 text without control characters (other than whitespace)."""
    head = bytes(data[:1024])
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:   # a character cut at the end of the slice is fine
            return False
        text = head[:e.start].decode("utf-8")
    return bool(text) and not re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", text)


# --- images --------------------------------------------------------------------------------------

def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image in `data` as an 8-bit BGR array (alpha dropped, grey expanded).

    Raises MediaError for: empty input, text or unknown bytes, a video or an image format OpenCV
    cannot read here, a JPEG/PNG that is truncated or structurally broken, pixel data that does not
    decode, and an image of more than `max_pixels` pixels (checked from the header before decoding
    where the format allows)."""
    if not data:
        raise MediaError(Message("media.empty", "the file is empty"))
    kind = sniff(data)
    if kind is None:
        raise MediaError(Message("media.text_not_image", "not an image: the data is text (JPEG, PNG, BMP, GIF, WebP or "
                                 "TIFF expected)") if looks_like_text(data) else
                         Message("media.unknown_not_image", "not an image: the data is not in an image format we "
                                 "recognise (JPEG, PNG, BMP, GIF, WebP or TIFF expected)"))
    if kind not in IMAGE_TYPES:
        raise MediaError(Message("media.undecodable_kind", "{kind} cannot be decoded as an image here (JPEG, PNG, BMP, "
                                 "GIF, WebP or TIFF expected)", kind=kind))
    _check_size(_header_size(data, kind), max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(Message("media.corrupt", "the {kind} data is corrupt and cannot be decoded ({size} bytes)",
                                 kind=kind, size=len(data)))
    _check_size((image.shape[1], image.shape[0]), max_pixels)
    return image


def _check_size(size: tuple[int, int] | None, max_pixels: int) -> None:
    if size is None:
        return
    w, h = size
    if w <= 0 or h <= 0:
        raise MediaError(Message("media.empty_size", "the image header gives an empty size ({w}x{h})", w=w, h=h))
    if w * h > max_pixels:
        raise MediaError(Message("media.too_many_pixels", "the image is {w}x{h} = {mp:.1f} megapixels, more than the "
                                 "{max:g} allowed", w=w, h=h, mp=w * h / 1e6, max=max_pixels / 1e6))


def _header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the header; for JPEG and PNG also checks the file is complete."""
    if kind == "image/jpeg":
        return _jpeg_size(data)
    if kind == "image/png":
        return _png_size(data)
    if kind == "image/gif" and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if kind == "image/bmp":
        width, height = (int.from_bytes(data[i:i + 4], "little", signed=True) for i in (18, 22))
        return width, abs(height)   # a negative height means rows stored top-down
    return None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walks the JPEG's segments to its end-of-image marker: (width, height) from the frame header.
    Raises MediaError when the data stops before the end marker or a segment is malformed."""
    pos, n, size = 2, len(data), None
    while True:
        if pos + 2 > n:
            raise MediaError(Message("media.jpeg_truncated_end", "the JPEG is truncated: it stops after {size} bytes, before its "
                                     "end marker", size=n))
        if data[pos] != 0xFF:
            raise MediaError(Message("media.jpeg_no_marker", "the JPEG is corrupt: no segment marker at byte {byte}", byte=pos))
        marker = data[pos + 1]
        if marker == 0xD9:
            if size is None:
                raise MediaError(Message("media.jpeg_no_frame", "the JPEG is corrupt: it has no frame header"))
            return size
        if marker == 0xFF or 0xD0 <= marker <= 0xD8 or marker == 0x01:   # fill byte or a marker without length
            pos += 1 if marker == 0xFF else 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if pos + 4 > n or end > n:
            raise MediaError(Message("media.jpeg_truncated_segment", "the JPEG is truncated: it stops after {size} bytes, inside "
                                     "a segment", size=n))
        if marker in _JPEG_SOF and size is None and end - pos >= 9:
            size = (int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big"))
        pos = _skip_scan(data, end) if marker == 0xDA else end


def _skip_scan(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data starting at `pos` (FF00 is a stuffed
    byte, FFD0-FFD7 are restart markers inside the scan)."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            raise MediaError(Message("media.jpeg_truncated_data", "the JPEG is truncated: it stops after {size} bytes, inside "
                                     "the image data", size=len(data)))
        nxt = data[i + 1]
        if nxt == 0 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            pos = i + (1 if nxt == 0xFF else 2)
            continue
        return i


def _png_size(data: bytes) -> tuple[int, int]:
    """Walks the PNG's chunks to IEND: (width, height) from IHDR. MediaError when truncated."""
    pos, n, size = 8, len(data), None
    while pos + 8 <= n:
        length, ctype = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > n:
            break
        if ctype == b"IHDR" and length >= 8:
            size = (int.from_bytes(data[pos + 8:pos + 12], "big"), int.from_bytes(data[pos + 12:pos + 16], "big"))
        if ctype == b"IEND":
            if size is None:
                raise MediaError(Message("media.png_no_header", "the PNG is corrupt: it has no IHDR header"))
            return size
        pos = end
    raise MediaError(Message("media.png_truncated", "the PNG is truncated: it stops after {size} bytes, before its IEND "
                             "chunk", size=n))


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR (or grey) image. MediaError if the array cannot be encoded."""
    return _encode(image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def encode_raw(image: np.ndarray) -> bytes:
    """A raw frame: the uint8 BGR (or grey) pixels of `image` after an NPY header giving their
    shape (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html). A runner takes
    it as it takes a JPEG, without a codec on either side: for a service on the same host, where
    bytes are cheap and CPU is not (a 768x576 frame: ~0.3 ms against ~2.6 ms to encode the JPEG
    and decode it again). MediaError for an array that is not uint8 (H, W, 3) or (H, W)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 or \
            not (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3):
        raise MediaError(Message("media.raw_frame", "cannot send a raw frame of a {dtype} array of shape {shape}: "
                                 "uint8 (height, width, 3) or (height, width) expected",
                                 dtype=str(getattr(image, "dtype", type(image).__name__)),
                                 shape=str(getattr(image, "shape", None))))
    return b"".join((_npy_header(image.shape), np.ascontiguousarray(image).data))


def decode_raw(blob: bytes) -> np.ndarray:
    """The BGR pixels of a raw frame (`encode_raw`'s format, checked as a runner checks it: nothing
    is unpickled). MediaError when `blob` is not such a frame."""
    try:
        return runner_images.decode_raw(blob)
    except runner_images.RawFrameError as e:
        raise MediaError(Message("media.raw_frame_bad", "not a raw frame: {error}", error=str(e))) from None


@functools.lru_cache(maxsize=16)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    fp = io.BytesIO()
    np.lib.format.write_array_header_1_0(fp, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return fp.getvalue()


def to_png(image: np.ndarray) -> bytes:
    """PNG bytes of a BGR, BGRA or grey image (lossless; fast compression)."""
    return _encode(image, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3])


def _encode(image: np.ndarray, ext: str, params: list[int]) -> bytes:
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise MediaError(f"cannot encode {ext[1:].upper()}: the image is empty")
    try:
        ok, buf = cv2.imencode(ext, image, params)
    except cv2.error as e:
        raise MediaError(f"cannot encode {ext[1:].upper()}: {e.err}") from e
    if not ok:
        raise MediaError(f"cannot encode {ext[1:].upper()} from a {image.dtype} array of shape {image.shape}")
    return buf.tobytes()


# --- drawing -------------------------------------------------------------------------------------

def draw(image: np.ndarray, task: str, output: Mapping[str, Any] | None, *,
         palette: Sequence[Color] = DEFAULT_PALETTE) -> np.ndarray:
    """A copy of `image` with `output` drawn on it, by task (image.* and video.* alike):

    - detection: each box in its label's colour with a "label score" caption on a filled tag
      (black or white text, whichever reads on the tag). Non-ASCII labels are captioned "#<n>",
      n = the box's position in `boxes` starting at 1 (cv2 cannot draw such text).
    - ocr: each line's polygon (or box) and its number, the line's position in `lines` starting
      at 1; the text itself is left to a table beside the image (it may be CJK).
    - classification: a banner across the top with "label score".

    Entries that are malformed (missing or non-numeric coordinates) are skipped; an unknown task or
    an output that is not a mapping gives an unchanged copy."""
    canvas = _bgr_copy(image)
    draw_into(canvas, task, output, palette=palette)
    return canvas


def _bgr_copy(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image.copy()


def draw_into(canvas: np.ndarray, task: str, output: Mapping[str, Any] | None, *,
              palette: Sequence[Color] = DEFAULT_PALETTE) -> None:
    """`draw` without the copy: draws on a BGR `canvas` in place (other layouts are left alone)."""
    drawer = _DRAWERS.get(task_kind(task))
    if drawer is not None and isinstance(output, Mapping) and canvas.ndim == 3 and canvas.shape[2] == 3:
        drawer(canvas, output, tuple(palette) or DEFAULT_PALETTE)


def task_kind(task: str) -> str:
    """"detection" for image.detection and video.detection, etc.; other tasks unchanged."""
    domain, _, kind = task.partition(".")
    return kind if domain in ("image", "video") else task


def label_color(label: str, palette: Sequence[Color] = DEFAULT_PALETTE) -> Color:
    """The palette colour of `label`: stable across runs and processes (not Python's salted hash)."""
    return palette[zlib.crc32(label.encode("utf-8")) % len(palette)]


@dataclass(frozen=True)
class _Style:
    font_scale: float
    thickness: int
    pad: int

    @classmethod
    def of(cls, image: np.ndarray) -> _Style:
        unit = max(image.shape[:2]) / 640
        return cls(font_scale=max(0.4, 0.5 * unit), thickness=max(2, round(1.5 * unit)), pad=max(2, round(3 * unit)))


def _draw_boxes(canvas: np.ndarray, output: Mapping[str, Any], palette: tuple[Color, ...]) -> None:
    style = _Style.of(canvas)
    for i, box in enumerate(_entries(output, "boxes")):
        rect = _rect(box, canvas)
        if rect is None:
            continue
        label = str(box.get("label", ""))
        color = label_color(label, palette)
        x, y, w, h = rect
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, style.thickness)
        name = label if _drawable(label) else f"#{i + 1}"
        _tag(canvas, f"{name} {_fmt_score(box.get('score'))}".strip(), (x, y), color, style)


def _draw_ocr(canvas: np.ndarray, output: Mapping[str, Any], palette: tuple[Color, ...]) -> None:
    style = _Style.of(canvas)
    for i, line in enumerate(_entries(output, "lines")):
        color = palette[i % len(palette)]
        polygon = _polygon(line.get("polygon"), canvas)
        rect = _rect(line.get("box"), canvas)
        if polygon is not None:
            cv2.polylines(canvas, [polygon], True, color, style.thickness, cv2.LINE_AA)
            anchor = (int(polygon[:, 0].min()), int(polygon[:, 1].min()))
        elif rect is not None:
            x, y, w, h = rect
            cv2.rectangle(canvas, (x, y), (x + w, y + h), color, style.thickness)
            anchor = (x, y)
        else:
            continue
        _tag(canvas, str(i + 1), anchor, color, style)


def _draw_banner(canvas: np.ndarray, output: Mapping[str, Any], palette: tuple[Color, ...]) -> None:
    label = output.get("label")
    if label is None:
        return
    style = _Style.of(canvas)
    text = f"{label if _drawable(str(label)) else '?'} {_fmt_score(output.get('score'))}".strip()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale * 1.4, style.thickness)
    height = min(canvas.shape[0], th + base + 4 * style.pad)
    strip = canvas[:height]
    strip[:] = (strip * 0.35).astype(np.uint8)   # darken in place: white text reads on any picture
    cv2.rectangle(canvas, (0, 0), (style.pad * 2, height - 1), label_color(str(label), palette), -1)
    cv2.putText(canvas, text, (style.pad * 4, height - base - 2 * style.pad), cv2.FONT_HERSHEY_SIMPLEX,
                style.font_scale * 1.4, (255, 255, 255), style.thickness, cv2.LINE_AA)


_DRAWERS: dict[str, Callable[[np.ndarray, Mapping[str, Any], tuple[Color, ...]], None]] = {
    "detection": _draw_boxes, "ocr": _draw_ocr, "classification": _draw_banner,
}


def _tag(canvas: np.ndarray, text: str, anchor: tuple[int, int], color: Color, style: _Style) -> None:
    """`text` on a filled tag of `color` just above `anchor` (inside, below it, at the top edge)."""
    if not text:
        return
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, style.thickness)
    tag_h, tag_w = th + base + 2 * style.pad, tw + 2 * style.pad
    x = min(max(anchor[0], 0), max(canvas.shape[1] - tag_w, 0))
    y = anchor[1] - tag_h if anchor[1] - tag_h >= 0 else max(anchor[1], 0)
    cv2.rectangle(canvas, (x, y), (x + tag_w, y + tag_h), color, -1)
    ink = (0, 0, 0) if 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2] > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + style.pad, y + style.pad + th), cv2.FONT_HERSHEY_SIMPLEX, style.font_scale,
                ink, style.thickness, cv2.LINE_AA)


def _entries(output: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = output.get(key)
    return [e for e in items if isinstance(e, Mapping)] if isinstance(items, list) else []


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _clamp(v: float, limit: int) -> int:
    return int(round(min(max(v, -limit), 2 * limit)))


def _rect(box: Any, canvas: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) in ints kept near the image (cv2 wants int32), or None if the box is malformed."""
    if not isinstance(box, Mapping):
        return None
    values = [_number(box.get(k)) for k in ("x", "y", "w", "h")]
    if any(v is None for v in values) or values[2] <= 0 or values[3] <= 0:
        return None
    height, width = canvas.shape[:2]
    x, y = _clamp(values[0], width), _clamp(values[1], height)
    return x, y, max(1, _clamp(values[2], 3 * width)), max(1, _clamp(values[3], 3 * height))


def _polygon(points: Any, canvas: np.ndarray) -> np.ndarray | None:
    if not isinstance(points, list) or len(points) < 3:
        return None
    height, width = canvas.shape[:2]
    out = []
    for p in points:
        xy = [_number(v) for v in p] if isinstance(p, (list, tuple)) and len(p) == 2 else [None]
        if None in xy:
            return None
        out.append((_clamp(xy[0], width), _clamp(xy[1], height)))
    return np.array(out, dtype=np.int32)


def _drawable(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _fmt_score(score: Any) -> str:
    """A box's score as drawn: a count (a cascade's neighbours) as a whole number, else two decimals."""
    value = _number(score)
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


# --- video ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoInfo:
    frames: int     # from the container header, else counted; a truncated file may hold fewer
    fps: float      # 0.0 when the container does not say
    width: int
    height: int
    codec: str      # FFmpeg's codec name: "h264", "mpeg4", "msmpeg4", …

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps else 0.0


def probe_video(path: Path) -> VideoInfo:
    """Frame count, rate, size and codec of the first video stream. The first frame is decoded to
    prove the file is usable. Raises MediaError for a missing, unreadable, corrupt or unsupported
    file, an image, or a file without a video stream or without a decodable frame."""
    return _probe(path)[0]


def video_poster(path: Path) -> tuple[VideoInfo, np.ndarray]:
    """`probe_video`'s facts and the first frame (BGR), decoded once; MediaError as there."""
    info, first = _probe(path)
    return info, _to_bgr(first)


def _probe(path: Path) -> tuple[VideoInfo, av.VideoFrame]:
    path = Path(path)
    _refuse_non_video(path)
    with _open_video(path) as container:
        stream = _video_stream(container, path)
        frames, codec = stream.frames, stream.codec_context.name
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        first = next(_decode(container, stream, path), None)
    if first is None:
        raise MediaError(f"{path.name}: the video stream holds no frame that decodes")
    if frames <= 0:
        frames = _count_packets(path)
    return VideoInfo(frames=frames, fps=fps, width=first.width, height=first.height, codec=codec), first


def _refuse_non_video(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as e:
        raise MediaError(f"{path.name}: cannot be read ({e.strerror or e})") from e
    kind = sniff(head)
    if not head:
        raise MediaError(f"{path.name}: the file is empty")
    if kind is not None and kind.startswith("image/"):
        raise MediaError(f"{path.name}: is an image ({kind}), not a video")


class _open_video:
    """Context manager: an opened container; FFmpeg errors become MediaError."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> av.container.InputContainer:
        try:
            self.container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError) as e:
            raise MediaError(f"{self.path.name}: not a readable video ({_reason(e)})") from e
        return self.container

    def __exit__(self, *exc: object) -> None:
        self.container.close()


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{path.name}: the file has no video stream")
    return container.streams.video[0]


def _decode(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> Iterator[av.VideoFrame]:
    """Decoded frames in order; MediaError when the data turns out corrupt part-way."""
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.FFmpegError as e:
            raise MediaError(f"{path.name}: the video is corrupt ({_reason(e)})") from e
        yield frame


def _to_bgr(frame: av.VideoFrame) -> np.ndarray:
    # swscale's yuv420p→bgr24 costs ~3 ms per SD frame here; cv2's conversion ~0.3 ms.
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def _count_packets(path: Path) -> int:
    with _open_video(path) as container:
        stream = _video_stream(container, path)
        try:
            return sum(1 for p in container.demux(stream) if p.size)
        except av.FFmpegError:
            return 0


def iter_frames(path: Path, *, every_nth: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, BGR frame) for frames 0, n, 2n, … of the first video stream. Raises
    MediaError when the file cannot be opened or its data is corrupt part-way."""
    path = Path(path)
    with _open_video(path) as container:
        for index, frame in enumerate(_decode(container, _video_stream(container, path), path)):
            if index % every_nth == 0:
                yield index, _to_bgr(frame)


class H264Writer:
    """Writes BGR frames as H.264 (yuv420p) in an MP4 whose index is at the front (faststart), so
    a browser starts playing before the download ends. libx264 from the PyAV wheel, fed in memory.

    The first frame fixes the size (odd sides are padded to even, as yuv420p requires); later
    frames of another size are resized to it. `close()` flushes and returns the frames written.
    Preset "ultrafast" on one thread (the caller's): ~2.1 ms of CPU per 768x576 frame here against
    ~3.9 ms for "superfast" on x264's own threads (~15 ms for "veryfast"), for ~1.6x the bytes of
    superfast at the same crf — the encoder shares the CPU with the algorithm, and on a busy host
    x264's threads only add hand-offs (docs/BENCHMARKS.md, "Video pipeline"). `threads=0` lets
    x264 choose (several threads: faster per frame on idle cores, more CPU in all)."""

    def __init__(self, path: Path, fps: float, *, crf: int = 23, preset: str = "ultrafast", threads: int = 1) -> None:
        self.path, self.frames = Path(path), 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        except (av.FFmpegError, OSError) as e:
            raise MediaError(f"cannot write the video {self.path}: {_reason(e)}") from e
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps or 25).limit_denominator(1001))
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray) -> None:
        if self._size is None:
            self._size = (image.shape[1] + image.shape[1] % 2, image.shape[0] + image.shape[0] % 2)
            self._stream.width, self._stream.height = self._size
        yuv = cv2.cvtColor(self._fit(image), cv2.COLOR_BGR2YUV_I420)   # cheaper than swscale from bgr24
        try:
            self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")))
        except (av.FFmpegError, OSError) as e:
            raise MediaError(f"cannot write the video {self.path}: {_reason(e)}") from e
        self.frames += 1

    def _fit(self, image: np.ndarray) -> np.ndarray:
        assert self._size is not None
        w, h = self._size
        if image.shape[1] > w or image.shape[0] > h or image.shape[1] < w - 1 or image.shape[0] < h - 1:
            return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if image.shape[:2] != (h, w):
            return cv2.copyMakeBorder(image, 0, h - image.shape[0], 0, w - image.shape[1], cv2.BORDER_REPLICATE)
        return image

    def close(self) -> int:
        if self._size is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()
        return self.frames

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class VideoRun:
    """What `run_video` did. `outputs`, `latency_ms` and `frame_indices` hold one entry per frame
    done, in frame order. `error` is the first failure (None on success); frames done before it are
    kept and are in the video. `out_path` is None when no frame was done (no video is written)."""
    info: VideoInfo
    frames_total: int
    frames_done: int = 0
    outputs: list[dict] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    frame_indices: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    cancelled: bool = False
    error: str | None = None
    out_path: Path | None = None

    @property
    def fps(self) -> float:
        """Frames done per second of the whole run (decode, calls, drawing and encoding)."""
        return self.frames_done / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self, task: str) -> list[dict[str, Any]]:
        return frame_summary(self.outputs, task, latency_ms=self.latency_ms, frame_indices=self.frame_indices)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, `info` as a dict, `out_path` as a string, plus `fps`."""
        return {**{f: getattr(self, f) for f in self.__dataclass_fields__}, "info": asdict(self.info),
                "out_path": str(self.out_path) if self.out_path else None, "fps": self.fps}


def _no_progress(done: int, total: int) -> None:
    return None


def run_video(path: Path, predict: Predict, *, task: str, out_path: Path, in_flight: int = 2, every_nth: int = 1,
              max_frames: int | None = None, progress: Progress = _no_progress,
              cancel: threading.Event | None = None, jpeg_quality: int = 90, frame_format: str = "jpeg",
              opencv_threads: int | None = None, frame_width: int | None = None,
              palette: Sequence[Color] = DEFAULT_PALETTE, writer: Callable[[Path, float], H264Writer] = H264Writer,
              clock: Callable[[], float] = time.perf_counter) -> VideoRun:
    """Sends frames 0, n, 2n, … (n = `every_nth`, at most `max_frames`) of the video at `path` to
    `predict` — one frame per call, `in_flight` calls at a time from worker threads while the next
    frames are decoded — and writes each frame with its output drawn to `out_path` (H.264 MP4 at
    fps / n), in frame order. `frame_format` "jpeg" sends JPEG at `jpeg_quality` (any service,
    anywhere); "raw" sends the decoded pixels themselves (`encode_raw`): for a service on this host,
    where it saves the codec's CPU on both sides and the service sees the very pixels decoded.
    `frame_width`: the width the service works at, when it shrinks its input to that width itself
    (person-detect's `resize_width`, say): frames wider than that are sent shrunk to it
    (`shrink_to_width`), so there are fewer pixels to encode, send and decode and the service skips
    its own resize, and each output's geometry is scaled back to the frame (`scale_output`) before
    it is drawn and kept. Narrower frames are sent as they are. None, the default: frames go at
    their own size.
    `opencv_threads` sets OpenCV's thread count in this process while the run lasts (restored after
    the last of the runs that set it): 1 when `predict` calls a service, since the pipeline's own
    conversions are small and, on a host shared with the service, OpenCV's idle workers only spin
    (~0.7 ms of CPU a frame here, docs/BENCHMARKS.md "Video pipeline"); None, the default, leaves
    it alone (an in-process predict may want OpenCV's threads).

    `progress(done, total)` is called on the calling thread (so a UI callback may update widgets),
    with 0 first and then after every frame written; `done` only grows (`total` shrinks if the file
    holds fewer frames than its header says). Setting `cancel` stops the run within ~0.1 s: frames
    written so far are kept, calls still running are abandoned and `cancelled` is True. An
    exception from `predict` (or an output that is not a dict) stops the run the same way, with
    `error` = "frame N: …". Raises MediaError when the video cannot be opened; ValueError for a
    bad argument."""
    if in_flight < 1 or every_nth < 1 or (max_frames is not None and max_frames < 0):
        raise ValueError("in_flight and every_nth must be >= 1 and max_frames >= 0")
    if frame_width is not None and frame_width < 1:
        raise ValueError("frame_width must be >= 1")
    if frame_format not in FRAME_FORMATS:
        raise ValueError(f"frame_format must be one of {', '.join(FRAME_FORMATS)}, not {frame_format!r}")
    info = probe_video(path)
    planned = math.ceil(info.frames / every_nth)
    run = VideoRun(info=info, frames_total=planned if max_frames is None else min(planned, max_frames))
    encode = encode_raw if frame_format == "raw" else functools.partial(encode_jpeg, quality=jpeg_quality)
    job = _VideoJob(predict, task, encode, palette, in_flight, frame_width)
    t0 = clock()
    progress(0, run.frames_total)
    video = writer(Path(out_path), info.fps / every_nth)
    frames = _limited(iter_frames(path, every_nth=every_nth), max_frames)
    try:
        with _OPENCV_THREADS.lowered(opencv_threads):
            job.run(frames, run, video, progress, cancel)
    finally:
        frames.close()
        job.close()
        written = video.close()
        run.wall_s = clock() - t0
    if written:
        run.out_path = Path(out_path)
    else:
        Path(out_path).unlink(missing_ok=True)
    return run


class _OpenCVThreads:
    """OpenCV's thread count is one setting per process: runs that lower it share the change, and
    the first count comes back when the last of them ends."""

    def __init__(self) -> None:
        self._lock, self._users, self._saved = threading.Lock(), 0, 0

    @contextlib.contextmanager
    def lowered(self, threads: int | None) -> Iterator[None]:
        if threads is None:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._saved = cv2.getNumThreads()
            self._users += 1
            cv2.setNumThreads(min(threads, self._saved))
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    cv2.setNumThreads(self._saved)


_OPENCV_THREADS = _OpenCVThreads()


def _limited(frames: Iterator[tuple[int, np.ndarray]], limit: int | None) -> Iterator[tuple[int, np.ndarray]]:
    for count, item in enumerate(frames):
        if limit is not None and count >= limit:
            return
        yield item


class _VideoJob:
    """The in-order pipeline of one `run_video`: a window of at most `in_flight` pending calls."""

    def __init__(self, predict: Predict, task: str, encode: Callable[[np.ndarray], bytes], palette: Sequence[Color],
                 in_flight: int, frame_width: int | None) -> None:
        self.predict, self.task, self.encode, self.palette = predict, task, encode, palette
        self.frame_width = frame_width
        self.in_flight = in_flight
        self.pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="video-predict")
        self.pending: deque[tuple[int, np.ndarray, Future]] = deque()

    def run(self, frames: Iterator[tuple[int, np.ndarray]], run: VideoRun, video: H264Writer,
            progress: Progress, cancel: threading.Event | None) -> None:
        exhausted = False
        while True:
            if cancel is not None and cancel.is_set():
                run.cancelled = True
                return
            exhausted = exhausted or self._fill(frames, run)
            if not self.pending:
                if run.error is None:   # the file held fewer frames than its header said
                    run.frames_total = run.frames_done
                return
            index, frame, future = self.pending.popleft()
            if not self._wait(future, cancel):
                run.cancelled = True
                return
            exhausted = exhausted or self._fill(frames, run)   # keep the service busy while we draw and encode
            if not self._finish(index, frame, future, run, video):
                return
            progress(run.frames_done, run.frames_total)

    def _fill(self, frames: Iterator[tuple[int, np.ndarray]], run: VideoRun) -> bool:
        """Submits frames until `in_flight` are pending. True when there are no more frames."""
        while len(self.pending) < self.in_flight:
            try:
                item = next(frames, None)
            except MediaError as e:
                run.error = run.error or f"decoding stopped at frame {run.frames_done + len(self.pending)}: {e}"
                return True
            if item is None:
                return True
            self.pending.append((item[0], item[1], self.pool.submit(self._call, item[1])))
        return False

    def _call(self, frame: np.ndarray) -> tuple[dict, float]:
        sent = shrink_to_width(frame, self.frame_width)
        body = self.encode(sent)
        t0 = time.perf_counter()
        output = self.predict(body)
        ms = (time.perf_counter() - t0) * 1000
        if sent is not frame:
            output = scale_output(self.task, output, frame.shape[1] / sent.shape[1], frame.shape[0] / sent.shape[0])
        return output, ms

    @staticmethod
    def _wait(future: Future, cancel: threading.Event | None) -> bool:
        """Waits for `future`; False as soon as `cancel` is set."""
        while not future.done():
            if cancel is not None and cancel.is_set():
                return False
            wait([future], timeout=CANCEL_POLL_S, return_when=FIRST_COMPLETED)
        return not (cancel is not None and cancel.is_set())

    def _finish(self, index: int, frame: np.ndarray, future: Future, run: VideoRun, video: H264Writer) -> bool:
        """Draws and writes one frame; False (with `run.error` set) if its call failed."""
        try:
            output, ms = future.result()
        except Exception as e:  # noqa: BLE001 - any failure of the service call ends the run, kept as text
            run.error = f"frame {index}: {type(e).__name__}: {e}"
            return False
        if not isinstance(output, dict):
            run.error = f"frame {index}: predict returned {type(output).__name__}, not a dict"
            return False
        draw_into(frame, self.task, output, palette=self.palette)
        video.write(frame)
        run.outputs.append(output)
        run.latency_ms.append(ms)
        run.frame_indices.append(index)
        run.frames_done += 1
        return True

    def close(self) -> None:
        """Drops calls not started; calls already running finish in the background, unread."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pending.clear()


def shrink_to_width(image: np.ndarray, width: int | None) -> np.ndarray:
    """`image` shrunk to `width` (height in proportion, rounded, at least 1), or `image` itself when
    `width` is None or not smaller than its width.

    By at most half, bilinear: its two-pixel support still reaches every input pixel, and it costs
    ~0.7 ms a 768x576 frame here against 3.3-4.5 ms for OpenCV's INTER_AREA at a factor that is not
    whole (what person-detect's own resize does) — CPU that, on a two-core host, is taken from the
    service (docs/BENCHMARKS.md, "Video pipeline"). Its pixels are 0.4 levels from INTER_AREA's on
    average; HOG, a sensitive detector, then finds a different number of people in 1 frame in 8 to
    12. By more than half, INTER_AREA: bilinear would skip pixels and alias (and whole factors are
    OpenCV's fast case)."""
    h, w = image.shape[:2]
    if width is None or width >= w:
        return image
    interpolation = cv2.INTER_LINEAR if w <= 2 * width else cv2.INTER_AREA
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=interpolation)


def scale_output(task: str, output: Any, fx: float, fy: float) -> Any:
    """`output` of a service that saw the image scaled by 1/fx, 1/fy, in the image's own pixels: a
    copy with detection boxes and OCR boxes and polygons scaled. A box's corners are scaled (w = right
    - left), as an algorithm that resizes internally scales its boxes back; whole numbers stay whole
    (rounded), others stay fractional. Entries without numeric geometry, other tasks and an output
    that is not a dict are returned as they are."""
    kind = task_kind(task)
    if not isinstance(output, dict) or kind not in ("detection", "ocr"):
        return output
    key = "boxes" if kind == "detection" else "lines"
    items = output.get(key)
    if not isinstance(items, list):
        return output
    scale = _scale_box if kind == "detection" else _scale_line
    return {**output, key: [scale(e, fx, fy) if isinstance(e, Mapping) else e for e in items]}


def _scale_box(box: Mapping[str, Any], fx: float, fy: float) -> Any:
    values = [box.get(k) for k in ("x", "y", "w", "h")]
    if any(_number(v) is None for v in values):
        return box
    x, y, w, h = values
    whole = all(isinstance(v, (int, np.integer)) for v in values)
    x0, x1, y0, y1 = (_scaled(v, f, whole) for v, f in ((x, fx), (x + w, fx), (y, fy), (y + h, fy)))
    return {**box, "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}


def _scale_line(line: Mapping[str, Any], fx: float, fy: float) -> Any:
    out = dict(line)
    if isinstance(line.get("box"), Mapping):
        out["box"] = _scale_box(line["box"], fx, fy)
    points = line.get("polygon")
    if isinstance(points, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 and
                                        all(_number(v) is not None for v in p) for p in points):
        out["polygon"] = [[_scaled(px, fx, isinstance(px, int)), _scaled(py, fy, isinstance(py, int))]
                          for px, py in points]
    return out


def _scaled(v: float, factor: float, whole: bool) -> float:
    return round(v * factor) if whole else float(v) * factor


# --- summaries -----------------------------------------------------------------------------------

def frame_summary(outputs: Sequence[Mapping[str, Any]], task: str, *, latency_ms: Sequence[float] | None = None,
                  frame_indices: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One row per output for charts: {"frame", "count", "mean_score", "latency_ms"} (+ "label"
    for classification). `count` = boxes (detection), lines (ocr), 1 when labelled (classification);
    `mean_score` = mean of the numeric scores, None when there are none; `latency_ms` None when
    not given. `frame` is the source frame index if `frame_indices` is given, else the position."""
    kind = task_kind(task)
    rows = []
    for i, output in enumerate(outputs):
        output = output if isinstance(output, Mapping) else {}
        row: dict[str, Any] = {"frame": frame_indices[i] if frame_indices is not None else i}
        if kind == "classification":
            score = _number(output.get("score"))
            row.update(count=int(output.get("label") is not None), mean_score=score, label=output.get("label"))
        else:
            entries = _entries(output, "lines" if kind == "ocr" else "boxes")
            scores = [s for s in (_number(e.get("score")) for e in entries) if s is not None]
            row.update(count=len(entries), mean_score=sum(scores) / len(scores) if scores else None)
        row["latency_ms"] = latency_ms[i] if latency_ms is not None else None
        rows.append(row)
    return rows
