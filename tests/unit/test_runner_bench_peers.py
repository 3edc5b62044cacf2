"""bench/bench_peers.py's pieces that decide what is measured and written: the V2 requests it sends
parse as the runner's own V2 parser reads them, and --write replaces only its generated part."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from orchestration.runner import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_peers  # noqa: E402


def test_v2_requests_of_the_bench_are_what_the_runner_reads() -> None:
    body, header_length = bench_peers.v2_binary(b"\xff\xd8\xffjpeg")
    assert v2.parse_infer(body, str(header_length)).elements == [b"\xff\xd8\xffjpeg"]
    text = bench_peers.runner_v2_workloads(b"x")["text"]
    assert v2.parse_infer(text.body, None).elements == ["hello world"]
    mlserver = json.loads(bench_peers.mlserver_workloads(b"hi")["image"].body)
    assert mlserver["inputs"][0]["data"] == ["aGk="] and mlserver["inputs"][0]["parameters"]["content_type"] == "base64"


def test_write_section_replaces_only_the_generated_part(tmp_path: Path) -> None:
    doc = tmp_path / "B.md"
    doc.write_text("# B\n\n## Runner\n\nold\n\n## Video\n\nv\n")
    bench_peers.write_section("## Runner against peers\n\nfirst table\n", doc)
    assert doc.read_text() == "# B\n\n## Runner\n\nold\n\n## Video\n\nv\n\n## Runner against peers\n\nfirst table\n"
    doc.write_text(doc.read_text() + "\n### What was found\n\nkept\n\n## Later\n\nl\n")
    bench_peers.write_section("## Runner against peers\n\nsecond table\n", doc)
    text = doc.read_text()
    assert "first table" not in text and "second table\n\n### What was found\n\nkept\n\n## Later\n" in text
    assert text.startswith("# B\n\n## Runner\n\nold\n\n## Video\n")


def test_lua_strings_carry_any_bytes() -> None:
    assert bench_peers.lua_string(b'a"\n\xff') == '"\\097\\034\\010\\255"'
