"""The manifest schema and call-parameter validation (orchestration/runner/manifest.py)."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import app.catalog.manifest
from orchestration.runner import manifest as rm
from orchestration.runner.manifest import (Manifest, ManifestError, ParamError, ParamSpec, Task, load_manifest,
                                           parse_manifest, validate_params)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "algorithms"

DESIGN_EXAMPLE = """
name: face-detect-haar
title: Face detection (Haar cascade)
description: Finds faces.
task: image.detection
entrypoint: predict:Algorithm
params:
  scale_factor: {type: float, default: 1.1, min: 1.01, max: 2.0, step: 0.01, help: "image pyramid step"}
  min_neighbors: {type: int, default: 5, min: 1, max: 20}
  model: {type: enum, choices: [default, alt2], default: default}
resources: {cpus: 1.0, memory: 512m}
replicas: 1
"""


def manifest_with(params: str = "", **fields: str) -> str:
    base = {"name": "demo", "title": "Demo", "task": "text.classification", **fields}
    text = "".join(f"{k}: {v}\n" for k, v in base.items())
    return text + ("params:\n" + textwrap.indent(textwrap.dedent(params), "  ") if params else "")


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    return {p.field: p.reason for p in info.value.problems}


# --- parsing ------------------------------------------------------------------------------------

def test_design_example_parses_with_typed_fields() -> None:
    m = parse_manifest(DESIGN_EXAMPLE)
    assert m.name == "face-detect-haar" and m.task is Task.IMAGE_DETECTION and m.task.value == "image.detection"
    assert m.params["scale_factor"].default == 1.1 and m.params["min_neighbors"].max == 20
    assert m.params["model"].choices == ["default", "alt2"]
    assert m.resources.cpus == 1.0 and m.resources.memory_mb == 512
    assert m.server is None and m.samples == [] and m.replicas == 1


def test_defaults_of_optional_fields() -> None:
    m = parse_manifest(manifest_with())
    assert (m.description, m.entrypoint, m.params, m.replicas) == ("", "predict:Algorithm", {}, 1)
    assert m.resources.cpus is None and m.resources.memory is None


def test_bad_manifest_fixture_reports_every_problem_at_once() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(FIXTURES / "bad_manifest")
    problems = {p.field: p.reason for p in info.value.problems}
    assert set(problems) == {"name", "task", "params.model.choices", "params.scale_factor.default"}
    assert "Bad_Manifest!" in problems["name"]
    assert "audio.transcription" in problems["task"] and "image.detection" in problems["task"]
    assert "between 1 and 2" in problems["params.scale_factor.default"]
    assert str(info.value.problems[0]).startswith("name: ")


def test_yaml_syntax_error_is_one_problem_with_its_line() -> None:
    problems = problems_of("name: demo\ntitle: Demo: x\ntask: json\n")
    assert problems == {"algorithm.yaml": "YAML syntax error at line 2, column 12: mapping values are not allowed here"}


def test_yaml_that_is_not_a_mapping_or_empty() -> None:
    assert "mapping" in problems_of("- a\n- b\n")["algorithm.yaml"]
    assert problems_of("")["algorithm.yaml"] == "empty"


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert [str(p) for p in info.value.problems] == ["algorithm.yaml: missing"]


def test_missing_and_unsafe_samples(tmp_path: Path) -> None:
    (tmp_path / "algorithm.yaml").write_text(manifest_with(samples="[samples/a.txt, ../etc/passwd, samples/b.txt]"))
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "b.txt").write_text("x")
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    problems = {p.field: p.reason for p in info.value.problems}
    assert set(problems) == {"samples.0", "samples.1"}
    assert "not found" in problems["samples.0"] and "inside the package" in problems["samples.1"]


def test_required_unknown_and_badly_formed_top_level_fields() -> None:
    problems = problems_of("name: x\ntask: json\nentrypoint: predict\nserver: python s.py\nreplicas: 0\nfoo: 1\n")
    assert problems["title"] == "required"
    assert "not a valid name" in problems["name"]
    assert "module:attr" in problems["entrypoint"]
    assert "$PORT" in problems["server"]
    assert "greater than or equal to 1" in problems["replicas"]
    assert problems["foo"] == "unknown field"


def test_resources_are_checked() -> None:
    problems = problems_of(manifest_with(resources="{cpus: 0, memory: 1.5g}"))
    assert set(problems) == {"resources.cpus", "resources.memory"}
    assert parse_manifest(manifest_with(resources="{memory: 2g}")).resources.memory_mb == 2048
    assert parse_manifest(manifest_with(resources="{memory: 300}")).resources.memory_mb == 300


def test_sizes_are_bounded() -> None:
    """Issue 11, finding 6: an upload accepted a 1 MB title, 20,000 params and memory: 999999g."""
    many = "".join(f"p{i}: {{type: int}}\n" for i in range(20_000))
    assert problems_of(manifest_with(many)) == {"params": "20,000 parameters; at most 100"}
    assert problems_of(manifest_with(title="t" * 1_000_000)) == {"title": "is 1,000,000 characters long; at most 200"}
    assert "at most 1024g" in problems_of(manifest_with(resources="{memory: 999999g}"))["resources.memory"]
    assert set(problems_of(manifest_with(description="d" * 20_001, tags="[" + "a, " * 33 + "a]"))) == {
        "description", "tags"}
    edge = parse_manifest(manifest_with("".join(f"p{i}: {{type: int}}\n" for i in range(100)), title="t" * 200,
                                        resources="{memory: 1024g}"))
    assert len(edge.params) == 100 and edge.resources.memory_mb == 1024 * 1024
    note = parse_manifest(manifest_with("note: {type: string}\n"))
    with pytest.raises(ParamError, match="is 10,000,000 characters long; at most 65,536"):
        validate_params(note, {"note": "y" * 10_000_000})
    assert validate_params(note, {"note": "y" * 65_536})["note"] == "y" * 65_536


@pytest.mark.parametrize("name,ok", [("ab", True), ("face-detect-2", True), ("a", False), ("-ab", False),
                                     ("ab-", False), ("Ab", False), ("a_b", False), ("a" * 63, True),
                                     ("a" * 64, False)])
def test_name_format(name: str, ok: bool) -> None:
    text = manifest_with(name=name)
    if ok:
        assert parse_manifest(text).name == name
    else:
        assert "name" in problems_of(text)


def test_param_spec_problems_have_precise_fields() -> None:
    problems = problems_of(manifest_with("""
        a: {type: float, default: 0.5, min: 2, max: 1, step: 0}
        b: {type: bool, default: "yes"}
        c: {type: enum, choices: [x, y], default: z}
        d: {type: int, default: 2.5}
        e: {type: bool, min: 0}
        f: {type: enum}
        g: {type: tensor}
        h: {type: int, defualt: 3}
        Bad-Name: {type: int}
        inputs: {type: int}
    """))
    assert problems["params.a.min"].startswith("must be <= max")
    assert problems["params.a.step"].startswith("must be > 0")
    assert "true or false" in problems["params.b.default"]
    assert 'one of ["x", "y"]' in problems["params.c.default"]
    assert "integer" in problems["params.d.default"]
    assert "only int and float" in problems["params.e.min"]
    assert "choices" in problems["params.f.choices"]
    assert "tensor" in problems["params.g.type"]
    assert problems["params.h.defualt"] == "unknown field"
    assert "not a valid parameter name" in problems["params.Bad-Name"]
    assert "not a valid parameter name" in problems["params.inputs"]


def test_implicit_defaults() -> None:
    m = parse_manifest(manifest_with("""
        a: {type: int, min: 3, max: 9}
        b: {type: float}
        c: {type: bool}
        d: {type: string}
        e: {type: enum, choices: [fast, slow]}
        f: {type: int, max: -4}
    """))
    assert {k: v.default for k, v in m.params.items()} == {"a": 3, "b": 0.0, "c": False, "d": "", "e": "fast", "f": -4}
    assert isinstance(m.params["b"].default, float)


def test_float_default_given_as_int_becomes_float() -> None:
    spec = ParamSpec(type="float", default=1, min=0, max=2)
    assert spec.default == 1.0 and isinstance(spec.default, float)


def test_round_trip_and_copy() -> None:
    m = parse_manifest(DESIGN_EXAMPLE)
    dumped = m.model_dump(mode="json", exclude_none=True)
    assert dumped["task"] == "image.detection" and "server" not in dumped
    assert Manifest.model_validate(dumped) == m
    renamed = m.model_copy(update={"name": "x"})
    assert renamed.name == "x" and m.name == "face-detect-haar"


@pytest.mark.parametrize("fixture", ["hello", "hello_image", "crash_in_setup", "slow_setup", "exit_in_predict",
                                     "raise_in_predict", "custom_server"])
def test_fixture_manifests_load(fixture: str) -> None:
    m = load_manifest(FIXTURES / fixture)
    assert m.samples and all((FIXTURES / fixture / s).is_file() for s in m.samples)


def test_task_input_kinds() -> None:
    kinds = {t.value: t.input_kind for t in Task}
    assert kinds["text.ner"] == "text" and kinds["image.ocr"] == "image"
    assert kinds["video.detection"] == "image" and kinds["json"] == "json"


def test_params_schema_is_json_schema() -> None:
    schema = parse_manifest(DESIGN_EXAMPLE).params_schema()
    assert schema["properties"]["min_neighbors"] == {"type": "integer", "default": 5, "minimum": 1, "maximum": 20}
    assert schema["properties"]["model"]["enum"] == ["default", "alt2"]


# --- texts per language, what a score means, a suggested demo -------------------------------------

LOCALIZED = DESIGN_EXAMPLE + """
score: {kind: neighbours, min: 1, help: raw detections grouped into the box}
labels: {face: a face}
demo:
  input: media/faces.jpg
  columns: [{model: default}, {model: alt2, min_neighbors: 3}]
i18n:
  zh:
    title: 人脸检测
    params:
      scale_factor: {label: 缩放步长, help: 图像金字塔的缩放步长}
      model: {choices: {alt2: 备选}}
    score: 合并到框里的原始检测数
    labels: {face: 人脸}
"""


def test_localized_manifest_takes_the_language_texts_and_keeps_the_rest() -> None:
    m = parse_manifest(LOCALIZED)
    zh = m.localized("zh")
    assert (zh.title, zh.description) == ("人脸检测", "Finds faces.")      # untranslated: the top-level text
    assert zh.params["scale_factor"].display("scale_factor") == "缩放步长"
    assert zh.params["scale_factor"].help == "图像金字塔的缩放步长"
    assert zh.params["min_neighbors"].display("min_neighbors") == "min_neighbors"
    assert [zh.params["model"].choice_label(c) for c in ("default", "alt2")] == ["default", "备选"]
    assert zh.score.kind == "neighbours" and zh.score.help == "合并到框里的原始检测数" and zh.score.min == 1
    assert (zh.label("face"), m.label("face"), zh.label("cat")) == ("人脸", "a face", "cat")
    assert zh.params["model"].default == "default" and zh.params == zh.localized("zh").params
    assert m.localized("fr") is m and m.title == "Face detection (Haar cascade)"   # the original is unchanged


def test_texts_demo_and_score_are_checked_against_the_manifest() -> None:
    bad = LOCALIZED.replace("scale_factor: {label", "scale: {label").replace("alt2: 备选", "alt3: 备选") \
        .replace("{model: alt2, min_neighbors: 3}", "{model: alt9, speed: 3}").replace("  zh:", "  Chinese:")
    problems = problems_of(bad.replace("kind: neighbours", "kind: votes"))
    assert set(problems) == {"score.kind", "i18n.Chinese"}    # field errors first, all of them
    problems = problems_of(bad.replace("  Chinese:", "  zh:"))
    assert problems == {
        "i18n.zh.params.scale": "no such parameter; known: scale_factor, min_neighbors, model",
        "i18n.zh.params.model.choices.alt3": "not a choice of the parameter",
        "demo.columns.1.model": 'must be one of ["default", "alt2"], got \'alt9\'',
        "demo.columns.1.speed": "unknown parameter; known: scale_factor, min_neighbors, model"}
    assert "params.m.choice_labels.x" in problems_of(manifest_with("""
        m: {type: enum, choices: [a, b], choice_labels: {x: X}}
    """))


def test_manifests_without_the_new_fields_stay_valid_and_round_trip() -> None:
    old = parse_manifest(DESIGN_EXAMPLE)
    assert (old.score, old.demo, old.i18n, old.labels) == (None, None, {}, {})
    assert old.localized("zh") is old
    m = parse_manifest(LOCALIZED)
    assert Manifest.model_validate(m.model_dump(mode="json", exclude_none=True)) == m
    assert m.params_schema()["properties"]["scale_factor"]["description"] == "image pyramid step"


def test_resize_param_names_an_int_parameter_and_gives_the_width_predict_works_at() -> None:
    m = parse_manifest(DESIGN_EXAMPLE.replace("replicas: 1", "replicas: 1\nresize_param: min_neighbors"))
    assert m.resize_width({}) == 5 and m.resize_width({"min_neighbors": 640}) == 640
    assert m.resize_width({"min_neighbors": 0}) is None and m.resize_width({"min_neighbors": True}) is None
    assert parse_manifest(DESIGN_EXAMPLE).resize_width({"min_neighbors": 640}) is None   # none named: whole images
    assert problems_of(DESIGN_EXAMPLE + "resize_param: width\n") == {
        "resize_param": "no such parameter; known: scale_factor, min_neighbors, model"}
    assert problems_of(DESIGN_EXAMPLE + "resize_param: scale_factor\n") == {
        "resize_param": "the parameter scale_factor is float; a width in pixels (int) expected"}


# --- call parameters ----------------------------------------------------------------------------

@pytest.fixture
def hello() -> Manifest:
    return load_manifest(FIXTURES / "hello")


def test_defaults_fill_in(hello: Manifest) -> None:
    assert validate_params(hello, {}) == {"threshold": 0.5, "mode": "length", "upper": False, "note": "", "n": 5}
    assert validate_params(hello, None)["n"] == 5
    assert validate_params(hello, {"n": None})["n"] == 5


@pytest.mark.parametrize("raw,expected", [
    ({"threshold": "0.25"}, {"threshold": 0.25}),
    ({"threshold": 1}, {"threshold": 1.0}),
    ({"upper": "true"}, {"upper": True}),
    ({"upper": "False"}, {"upper": False}),
    ({"upper": "1"}, {"upper": True}),
    ({"upper": "0"}, {"upper": False}),
    ({"n": "7"}, {"n": 7}),
    ({"n": "7.0"}, {"n": 7}),
    ({"n": 7.0}, {"n": 7}),
    ({"mode": "echo"}, {"mode": "echo"}),
    ({"note": "5"}, {"note": "5"}),
])
def test_coercion(hello: Manifest, raw: dict, expected: dict) -> None:
    got = validate_params(hello, raw)
    for key, value in expected.items():
        assert got[key] == value and type(got[key]) is type(value)


def test_every_bad_param_is_named(hello: Manifest) -> None:
    with pytest.raises(ParamError) as info:
        validate_params(hello, {"threshold": "high", "n": 0, "mode": "loud", "upper": "maybe", "note": 3,
                                "min_neighbors": 2})
    problems = {p.field: p.reason for p in info.value.problems}
    assert set(problems) == {"threshold", "n", "mode", "upper", "note", "min_neighbors"}
    assert problems["n"] == "must be between 1 and 100, got 0"
    assert "unknown parameter" in problems["min_neighbors"] and "threshold" in problems["min_neighbors"]
    assert str(info.value).startswith("threshold: ")


@pytest.mark.parametrize("raw", [{"n": True}, {"n": 2.5}, {"threshold": "nan"}, {"threshold": 1.5},
                                 {"threshold": 10**400},
                                 {"upper": 2}, {"n": "abc"}])
def test_refused_values(hello: Manifest, raw: dict) -> None:
    with pytest.raises(ParamError) as info:
        validate_params(hello, raw)
    assert [p.field for p in info.value.problems] == list(raw)


def test_json_encoded_list_choice_from_query_string() -> None:
    m = parse_manifest(manifest_with("size: {type: enum, choices: [[640, 480], [320, 240]]}\nk: {type: enum, "
                                     "choices: [1, 3, 5], default: 3}"))
    assert validate_params(m, {"size": "[320, 240]"})["size"] == [320, 240]
    assert validate_params(m, {"size": [320, 240], "k": "5"}) == {"size": [320, 240], "k": 5}
    with pytest.raises(ParamError):
        validate_params(m, {"size": "[1, 2]"})


def test_numeric_params_with_choices() -> None:
    m = parse_manifest(manifest_with("k: {type: int, choices: [1, 3, 5], default: 3}"))
    assert validate_params(m, {"k": "5"}) == {"k": 5}
    with pytest.raises(ParamError):
        validate_params(m, {"k": 4})


# --- packaging ----------------------------------------------------------------------------------

def test_app_manifest_re_exports_the_runner_module() -> None:
    assert app.catalog.manifest.Manifest is rm.Manifest and app.catalog.manifest.load_manifest is rm.load_manifest
    assert app.catalog.manifest.ManifestError is rm.ManifestError


def test_runner_package_does_not_import_app() -> None:
    """The runner is copied into containers: only contract.py (platform side) may import app."""
    offenders = []
    for path in (ROOT / "orchestration" / "runner").glob("*.py"):
        if path.name == "contract.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n == "app" or n.startswith("app.")]
    assert offenders == []
