"""Algorithms and versions: list, show, diff, upload (an archive, or a git URL)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from api.deps import P, Who
from app.errors import Problem, TooLarge
from app.schemas import AlgorithmOut, Shape, UploadOut

router = APIRouter(prefix="/api/v1", tags=["algorithms"])


class GitUploadIn(Shape):
    url: str
    name: str | None = None
    message: str = ""


class ChangesOut(Shape):
    added: list[str]
    modified: list[str]
    deleted: list[str]
    manifest: dict[str, list]
    params_added: list[str]
    params_removed: list[str]
    params_changed: dict[str, list]


@router.get("/algorithms", response_model=list[AlgorithmOut])
def list_algorithms(p: P, who: Who) -> list[AlgorithmOut]:
    return [AlgorithmOut.of(a) for a in p.catalog.list(who)]


@router.get("/algorithms/{name}", response_model=AlgorithmOut)
def get_algorithm(name: str, p: P, who: Who) -> AlgorithmOut:
    return AlgorithmOut.of(p.catalog.get(who, name))


@router.get("/algorithms/{name}/diff", response_model=ChangesOut)
def diff(name: str, p: P, who: Who, old: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)],
         new: Annotated[int, Query(alias="to", ge=1, le=2**31 - 1)]) -> ChangesOut:
    c = p.catalog.changes(who, name, old, new)
    return ChangesOut(added=c.added, modified=c.modified, deleted=c.deleted,
                      manifest={k: list(v) for k, v in c.manifest.items()}, params_added=c.params_added,
                      params_removed=c.params_removed, params_changed={k: list(v) for k, v in c.params_changed.items()})


@router.post("/algorithms", response_model=UploadOut, status_code=201)
def upload_archive(request: Request, p: P, who: Who, archive: Annotated[UploadFile, File()],
                   name: Annotated[str | None, Form()] = None, message: Annotated[str, Form()] = "") -> UploadOut:
    """A new version from a zip or tar archive of the package (multipart field `archive`)."""
    data = read_limited(archive, p.settings.value("ALGOSTAGE_MAX_UPLOAD_MB"))
    return UploadOut.of(p.catalog.upload_archive(who, archive.filename or "upload.zip", data, name=name or None,
                                                 message=message))


@router.post("/algorithms/git", response_model=UploadOut, status_code=201)
def upload_git(body: GitUploadIn, p: P, who: Who) -> UploadOut:
    """A new version from a git URL (`https://…/repo.git#ref`)."""
    return UploadOut.of(p.catalog.upload(who, body.url, name=body.name, message=body.message))


def read_limited(upload: UploadFile, max_mb: int) -> bytes:
    """The uploaded file, refused (413) past `max_mb` without reading the rest."""
    limit = max_mb * 1024 * 1024
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge([Problem("archive", f"larger than {max_mb} MB (ALGOSTAGE_MAX_UPLOAD_MB)")])
    return data
