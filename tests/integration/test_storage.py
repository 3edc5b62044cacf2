"""Object storage: the local directory, and the S3 path with the real minio client against a
real S3 HTTP endpoint on loopback (moto's standalone server)."""
import subprocess
import sys
import time

import httpx
import pytest

from app.storage import LocalObjectStore, ObjectNotFound, StorageError, minio_store, seed
from tests.conftest import free_port


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("the S3 endpoint (moto server) did not start")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    return minio_store(endpoint, "testing", "testing-secret", False)


def test_put_get_stat_list_delete(store):
    info = store.put("results", "runs/1/out.json", b'{"a": 1}')
    assert info.size == 8 and info.content_type == "application/json"
    assert store.get("results", "runs/1/out.json") == b'{"a": 1}'
    store.put("results", "runs/2/video.mp4", b"\x00" * 100)
    assert [i.key for i in store.list("results", "runs/")] == ["runs/1/out.json", "runs/2/video.mp4"]
    assert store.stat("results", "runs/2/video.mp4").content_type == "video/mp4"
    store.delete("results", "runs/1/out.json")
    assert store.stat("results", "runs/1/out.json") is None
    with pytest.raises(ObjectNotFound):
        store.get("results", "runs/1/out.json")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "a\\b", "", "dir/"])
def test_hostile_keys_are_refused(store, key):
    with pytest.raises(StorageError):
        store.put("results", key, b"x")


def test_seed_is_idempotent(store, tmp_path):
    src = tmp_path / "media"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"1" * 10)
    (src / "b.txt").write_text("hello")
    assert seed(store, src) == ["b.txt", "images/a.jpg"]
    assert seed(store, src) == []
    (src / "b.txt").write_text("hello, changed")
    assert seed(store, src) == ["b.txt"]
    assert store.get("demo-media", "b.txt") == b"hello, changed"


def test_unreachable_endpoint_is_a_clear_error():
    store = minio_store(f"127.0.0.1:{free_port()}", "k", "s", False)
    with pytest.raises(StorageError, match="not reachable"):
        store.list("results")
