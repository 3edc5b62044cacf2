"""What the Showcase runs on: demo media, uploads and typed text, referenced, loaded and checked.

Contracts:
- Inputs are referenced as `bucket/key` (a whole object) or `bucket/key#n` (line n, from 1, of a
  demo text file). Demo media lives in the demo bucket under `media/` and `text/`; uploads and
  typed texts are stored under `uploads/` so that scenarios can name them.
- Bad input never reaches a service: an unsupported, oversized, corrupt or over-long input raises
  `ValidationFailed` naming the input ("input", or "file" for an upload).
- Which media supply an input of a task's input kind (`app.catalog.manifest.input_kind`) is said
  once, by `media_kinds`: text and json inputs come from texts, image inputs from images (and,
  run frame by frame, videos).
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app import media
from app.auth import Action, Actor, internal, require
from app.errors import Message, Problem, ValidationFailed
from app.storage import DEMO_BUCKET, ObjectNotFound, ObjectStore, StorageError

MAX_TEXT_CHARS = 10_000
GALLERY_PREFIXES = ("media/", "text/", "uploads/")
UPLOAD_PREFIX = "uploads/"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
TEXT_EXTENSIONS = frozenset({".txt"})
DOC_FILE_RE = re.compile(r"(readme|licen[cs]e|copying|notice|sources|authors)\b", re.I)
_IMAGE_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
              "image/webp": ".webp", "image/tiff": ".tiff"}


def media_kind(key: str) -> str | None:
    """"image", "video" or "text" from the key's extension; None for anything else."""
    ext = PurePosixPath(key).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "text" if ext in TEXT_EXTENSIONS else None


def media_kinds(input_kind: str, *, video: bool = False) -> tuple[str, ...]:
    """The media kinds that supply an input of `input_kind` ("text", "image" or "json"): texts for
    text and json, images for image — and videos too, with `video` (they run frame by frame)."""
    if input_kind == "image":
        return ("image", "video") if video else ("image",)
    return ("text",)


@dataclass(frozen=True)
class InputRef:
    """An input in the object store: a whole object, or one line (from 1) of a text object."""
    bucket: str
    key: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.bucket}/{self.key}" + (f"#{self.line}" if self.line else "")

    @property
    def kind(self) -> str | None:
        return media_kind(self.key)

    @classmethod
    def parse(cls, text: str) -> InputRef:
        """`bucket/key` or `bucket/key#n`; ValidationFailed for anything else."""
        path, _, line = text.partition("#")
        bucket, _, key = path.partition("/")
        if not bucket or not key or (line and not line.isdigit()) or line == "0":
            raise ValidationFailed([Problem("input", Message("input.bad_ref", "{ref!r} is not an input reference (bucket/key[#line])",
                                                       ref=text))])
        return cls(bucket, key, int(line) if line else None)


@dataclass(frozen=True)
class MediaItem:
    """One choice of the gallery: its reference, kind, a label to show and the object's size."""
    ref: InputRef
    kind: str
    label: str
    size: int


@dataclass(frozen=True)
class InputData:
    """A loaded, checked input: `text` for text, `data` (bytes) for images and videos."""
    ref: str
    kind: str
    text: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 200 * 1024 * 1024
    max_text_chars: int = MAX_TEXT_CHARS
    max_pixels: int = media.DEFAULT_MAX_PIXELS


@contextmanager
def temp_file(workdir: Path, data: bytes) -> Iterator[Path]:
    """`data` in a temporary file under `workdir` (videos are decoded from files), removed on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="showcase-", dir=workdir) as folder:
        path = Path(folder) / "input.bin"
        path.write_bytes(data)
        yield path


class Inputs:
    """The gallery, uploads and typed text in the object store; `workdir` holds temporary video files."""

    def __init__(self, objects: ObjectStore, workdir: Path, limits: Limits | None = None) -> None:
        self._objects = objects
        self._workdir = workdir
        self.limits = limits or Limits()

    # --- the gallery ----------------------------------------------------------------------------

    def gallery(self, actor: Actor, kind: str) -> list[MediaItem]:
        """Demo media and uploads of `kind` ("image", "video", "text"); text files give one item
        per non-empty line, except uploaded texts, which are one input each."""
        require(actor, Action.VIEW_SHOWCASE)
        items: list[MediaItem] = []
        for info in self._objects.list(DEMO_BUCKET):
            if not info.key.startswith(GALLERY_PREFIXES) or media_kind(info.key) != kind:
                continue
            if kind == "text" and not info.key.startswith(UPLOAD_PREFIX):
                items += self._text_lines(info.key)
            else:
                items.append(MediaItem(InputRef(DEMO_BUCKET, info.key), kind, info.key, info.size))
        return items

    def _text_lines(self, key: str) -> list[MediaItem]:
        if DOC_FILE_RE.match(PurePosixPath(key).name):   # licences and notes beside the demo media
            return []
        text = self._objects.get(DEMO_BUCKET, key).decode("utf-8", errors="replace")
        return [MediaItem(InputRef(DEMO_BUCKET, key, n), "text", f"{PurePosixPath(key).name}: {line.strip()[:80]}",
                          len(line.encode())) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    # --- adding inputs ---------------------------------------------------------------------------

    def add_media(self, actor: Actor, filename: str, data: bytes) -> MediaItem:
        """Check an upload (type, size, decodable) and store it under `uploads/`; returns its item.
        ValidationFailed ("file") when it is refused; identical uploads share one object."""
        require(actor, Action.VIEW_SHOWCASE)
        kind = self._upload_kind(filename, data)
        self.check(InputData(filename, kind, data.decode("utf-8") if kind == "text" else None,
                             None if kind == "text" else data), field_name="file")
        return self._store(filename, data, kind)

    def add_text(self, actor: Actor, text: str) -> MediaItem:
        """Store typed text (checked: not empty, at most `max_text_chars`) as an input."""
        require(actor, Action.VIEW_SHOWCASE)
        self.check(InputData("text", "text", text))
        return self._store("text.txt", text.encode("utf-8"), "text")

    def _upload_kind(self, filename: str, data: bytes) -> str:
        if len(data) > self.limits.max_upload_bytes:
            raise ValidationFailed([Problem("file", Message("upload.too_large", "{file} is {size:.1f} MiB; at most {max:g} MiB "
                                                            "allowed", file=filename, size=len(data) / 2**20,
                                                            max=self.limits.max_upload_bytes / 2**20))])
        sniffed = media.sniff(data) or ""
        if sniffed.startswith(("image/", "video/")):
            return sniffed.partition("/")[0]
        named = media_kind(filename)
        if named == "text" or (named is None and media.looks_like_text(data)):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationFailed([Problem("file", Message("upload.not_utf8", "{file} is not UTF-8 text", file=filename))]) from None
            return "text"
        if named in ("image", "video"):
            return named
        raise ValidationFailed([Problem("file", Message("upload.unsupported", "{file}: unsupported type; images (JPEG, PNG, "
                                                        "BMP, GIF, WebP, TIFF), videos (AVI, MP4, MOV, MKV, WebM) or UTF-8 "
                                                        "text expected", file=filename))])

    def _store(self, filename: str, data: bytes, kind: str) -> MediaItem:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(filename).name).strip("-.")[:80] or "upload"
        ext = {"image": ".png", "video": ".mp4", "text": ".txt"}[kind]
        if media_kind(stem) != kind:
            stem += ext if kind != "image" else _IMAGE_EXT.get(media.sniff(data) or "", ".png")
        key = f"{UPLOAD_PREFIX}{hashlib.sha256(data).hexdigest()[:12]}-{stem}"
        if self._objects.stat(DEMO_BUCKET, key) is None:
            self._objects.put(DEMO_BUCKET, key, data)
        return MediaItem(InputRef(DEMO_BUCKET, key), kind, key, len(data))

    # --- loading and checking --------------------------------------------------------------------

    def load(self, actor: Actor, ref: InputRef | str) -> InputData:
        """The input `ref` names, checked as an input of its kind. ValidationFailed ("input") when
        it is missing, of an unknown type, or not usable."""
        require(actor, Action.VIEW_SHOWCASE)
        ref = InputRef.parse(ref) if isinstance(ref, str) else ref
        kind = ref.kind
        if kind is None:
            raise ValidationFailed([Problem("input", Message("input.unsupported", "{key}: unsupported type", key=ref.key))])
        try:
            raw = self._objects.get(ref.bucket, ref.key)
        except ObjectNotFound:
            raise ValidationFailed([Problem("input", Message("input.missing", "{ref} does not exist", ref=str(ref)))]) from None
        except StorageError as e:
            raise ValidationFailed([Problem("input", e.message)]) from None
        data = _decode_ref(ref, kind, raw)
        self.check(data)
        return data

    def coerce(self, actor: Actor, value: InputRef | InputData | str | bytes) -> InputData:
        """InputData as it is, an InputRef loaded; a str is typed text, bytes an uploaded image
        (both checked)."""
        require(actor, Action.VIEW_SHOWCASE)
        if isinstance(value, InputData):
            return value
        if isinstance(value, InputRef):
            return self.load(actor, value)
        data = InputData("typed text", "text", text=value) if isinstance(value, str) else \
            InputData("upload", "image", data=value)
        self.check(data)
        return data

    @internal("checks the data it is given; reads nothing stored")
    def check(self, data: InputData, field_name: str = "input") -> None:
        """Refuses empty or over-long text, undecodable images and unreadable videos
        (ValidationFailed with `field_name`)."""
        reason = None
        if data.kind == "text":
            n = len(data.text or "")
            if not (data.text or "").strip():
                reason = Message("input.text_empty", "the text is empty")
            elif n > self.limits.max_text_chars:
                reason = Message("input.text_too_long", "the text is {count:,} characters long; at most {max:,} are "
                                 "allowed", count=n, max=self.limits.max_text_chars)
        elif data.kind == "image":
            try:
                media.decode_image(data.data or b"", max_pixels=self.limits.max_pixels)
            except media.MediaError as e:
                reason = e.message
        elif data.kind == "video":
            reason = self._video_problem(data.data or b"")
        if reason:
            raise ValidationFailed([Problem(field_name, reason)])

    def _video_problem(self, data: bytes) -> str | None:
        with temp_file(self._workdir, data) as path:
            try:
                media.probe_video(path)
            except media.MediaError as e:
                return str(e).replace(path.name, "the video")
        return None

    @internal("decodes the video it is given; reads nothing stored")
    def video_poster(self, data: InputData) -> tuple[media.VideoInfo, bytes]:
        """A video's size, length, rate and codec, and its first frame as JPEG: a preview every
        browser shows (browsers play H.264 MP4 and WebM, not the AVI files of the demo gallery).
        ValidationFailed ("input") when the video is unreadable."""
        with temp_file(self._workdir, data.data or b"") as path:
            try:
                info, first = media.video_poster(path)
            except media.MediaError as e:
                raise ValidationFailed([Problem("input", Message("input.no_frame", "{ref}: no frame to show ({error})",
                                                                 ref=data.ref, error=e.message))]) from None
        return info, media.encode_jpeg(first, quality=85)


def _decode_ref(ref: InputRef, kind: str, raw: bytes) -> InputData:
    if kind != "text":
        return InputData(str(ref), kind, data=raw)
    text = raw.decode("utf-8", errors="replace")
    if ref.line is not None:
        lines = text.splitlines()
        if ref.line > len(lines):
            raise ValidationFailed([Problem("input", Message("input.no_line", "{key} has no line {line}", key=ref.key,
                                                             line=ref.line))])
        text = lines[ref.line - 1]
    return InputData(str(ref), "text", text=text.strip())
