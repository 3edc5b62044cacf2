"""The algorithm manifest (`algorithm.yaml`, DESIGN §2) and the validation of call parameters.

Self-contained: imported by the platform (through `app.catalog.manifest`) and by the runner inside every
service, so it depends on the standard library, pydantic and PyYAML only.

Contracts:
- `parse_manifest(text)` / `load_manifest(package_dir)` return a `Manifest` or raise
  `ManifestError` listing EVERY problem found, each with a dotted field path
  ("params.scale_factor.max") and a reason. A YAML syntax error is one problem with its line.
- `validate_params(manifest, raw)` returns the keyword arguments for `predict`: defaults filled
  in, strings from query strings coerced to the declared type, every value range- and
  choice-checked. Unknown parameters are refused. Raises `ParamError` naming every bad parameter.
- A parameter declared without `default` gets an implicit one: the first choice (enum), false
  (bool), "" (string), `min` or else 0 (int, float). Dumps therefore always carry a default.
- The user-facing texts (title, description, a parameter's label, help and choice labels, what the
  score means, display names of result labels) may be given per language in an `i18n:` block;
  `Manifest.localized(lang)` is the manifest with those of `lang` in place (the top-level texts
  where a language gives none). What a result's `score` means comes from `score:` (a kind the
  interfaces name, a range, a help text), and a good first demo from `demo:` (a gallery input,
  parameter sets to compare). All three are optional: manifests without them stay valid.
"""
from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

MANIFEST_FILE = "algorithm.yaml"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,61}[a-z0-9]")
PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED_PARAMS = frozenset({"inputs", "self"})
LANG_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?")
# sizes an upload may not exceed (issue 11, finding 6: a 1 MB title, 20,000 params and 999999g were accepted)
MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_PARAMS = 100
MAX_TAGS = 32
MAX_MEMORY_MB = 1024 * 1024          # 1 TiB per replica
MAX_STRING_PARAM = 65_536            # characters of one string parameter's value
SCORE_KINDS = ("probability", "confidence", "margin", "neighbours", "weight", "similarity", "distance", "other")
ENTRYPOINT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
MEMORY_RE = re.compile(r"(\d+)\s*([mMgG]?)[bB]?")
PORT_RE = re.compile(r"\$\{?PORT\}?")
TRUE_STRINGS = frozenset({"true", "1", "yes", "on"})
FALSE_STRINGS = frozenset({"false", "0", "no", "off"})


class Task(str, Enum):
    TEXT_CLASSIFICATION = "text.classification"
    TEXT_NER = "text.ner"
    IMAGE_DETECTION = "image.detection"
    IMAGE_CLASSIFICATION = "image.classification"
    IMAGE_OCR = "image.ocr"
    VIDEO_DETECTION = "video.detection"
    VIDEO_CLASSIFICATION = "video.classification"
    JSON = "json"

    @property
    def input_kind(self) -> Literal["text", "image", "json"]:
        """What one input to `predict` is: a str, a BGR image (video tasks get frames), or a dict."""
        if self is Task.JSON:
            return "json"
        return "text" if self.value.startswith("text.") else "image"


@dataclass(frozen=True)
class ManifestProblem:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ManifestError(ValueError):
    """The manifest was refused; `problems` lists every reason at once."""

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class ParamError(ValueError):
    """Call parameters were refused; `problems` names every bad parameter (field = its name)."""

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --- value checks shared by manifest defaults and call parameters -------------------------------

def _as_int(value: Any, lenient: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if lenient and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                f = math.nan
            if f.is_integer():
                return int(f)
    raise ValueError(f"must be an integer, got {_r(value)}")


def _as_float(value: Any, lenient: bool) -> float:
    f = math.nan
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            f = float(value)
        elif lenient and isinstance(value, str):
            f = float(value.strip())
    except (ValueError, OverflowError):
        pass
    if not math.isfinite(f):
        raise ValueError(f"must be a finite number, got {_r(value)}")
    return f


def _as_bool(value: Any, lenient: bool) -> bool:
    if isinstance(value, bool):
        return value
    if lenient and isinstance(value, str) and value.strip().lower() in TRUE_STRINGS | FALSE_STRINGS:
        return value.strip().lower() in TRUE_STRINGS
    if lenient and isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"must be true or false, got {_r(value)}")


def _as_string(value: Any, lenient: bool) -> str:
    if isinstance(value, str):
        if len(value) > MAX_STRING_PARAM:
            raise ValueError(f"is {len(value):,} characters long; at most {MAX_STRING_PARAM:,}")
        return value
    raise ValueError(f"must be a string, got {_r(value)}")


def _as_choice(value: Any, choices: list[Any], lenient: bool) -> Any:
    if any(value == c and type(value) is type(c) for c in choices):
        return value
    if lenient and isinstance(value, str):
        for c in choices:
            if str(c) == value or (isinstance(c, bool) and str(c).lower() == value):
                return c
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if decoded is not None and decoded in choices:
            return decoded
    if lenient and isinstance(value, (int, float)) and not isinstance(value, bool) and value in choices:
        return next(c for c in choices if c == value)
    raise ValueError(f"must be one of {_show(choices)}, got {_r(value)}")


_COERCERS = {"int": _as_int, "float": _as_float, "bool": _as_bool, "string": _as_string}


def _r(value: Any) -> str:
    """repr of a refused value, shortened so a huge input does not flood the message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _show(choices: list[Any]) -> str:
    return "[" + ", ".join(json.dumps(c) for c in choices) + "]"


def _range_reason(value: float, lo: float | None, hi: float | None) -> str | None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            return f"must be between {lo:g} and {hi:g}, got {value:g}"
        return f"must be >= {lo:g}, got {value:g}" if lo is not None else f"must be <= {hi:g}, got {value:g}"
    return None


# --- the models ---------------------------------------------------------------------------------

def _custom(reason: str) -> PydanticCustomError:
    return PydanticCustomError("manifest", reason)


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise _custom(f"{value!r} is not a valid name: 2-63 characters of a-z, 0-9 and '-', "
                      "starting and ending with a letter or digit")
    return value


def _check_param_name(value: str) -> str:
    if not PARAM_NAME_RE.fullmatch(value) or keyword.iskeyword(value) or value in RESERVED_PARAMS:
        raise _custom(f"{value!r} is not a valid parameter name: a Python identifier of up to 64 "
                      "characters, not a keyword, not 'inputs'")
    return value


def _check_entrypoint(value: str) -> str:
    if not ENTRYPOINT_RE.fullmatch(value):
        raise _custom(f"{value!r} must look like 'module:attr', e.g. 'predict:Algorithm'")
    return value


def _check_server(value: str | None) -> str | None:
    if value is not None and not PORT_RE.search(value):
        raise _custom("must contain $PORT, which the platform replaces with the port to listen on")
    if value is not None and not value.strip():
        raise _custom("must not be empty")
    return value


def _check_sample(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise _custom(f"{value!r} must be a relative path inside the package")
    return value


def _check_title(value: str) -> str:
    if not value.strip():
        raise _custom("must not be empty")
    if len(value) > MAX_TITLE:
        raise _custom(f"is {len(value):,} characters long; at most {MAX_TITLE}")
    return value


def _check_param_count(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_PARAMS:
        raise _custom(f"{len(value):,} parameters; at most {MAX_PARAMS}")
    return value


def _check_lang(value: str) -> str:
    if not LANG_RE.fullmatch(value):
        raise _custom(f"{value!r} is not a language code such as zh, en or zh-TW")
    return value


def _memory_to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_memory(value: str | None) -> str | None:
    m = MEMORY_RE.fullmatch(value.strip()) if value is not None else None
    if value is not None and (m is None or int(m[1]) == 0):
        raise _custom(f"{value!r} is not a memory size: a whole number with an optional unit m or g, e.g. 512m, 2g")
    if m is not None and int(m[1]) * (1024 if m[2].lower() == "g" else 1) > MAX_MEMORY_MB:
        raise _custom(f"{value.strip()} is more memory than one replica can have (at most {MAX_MEMORY_MB // 1024}g)")
    return value


Number = int | float
ParamName = Annotated[str, AfterValidator(_check_param_name)]
LangCode = Annotated[str, AfterValidator(_check_lang)]


class ParamSpec(BaseModel):
    """One parameter of `predict`: drives the Showcase form, the sweeps and call validation."""
    model_config = ConfigDict(extra="forbid")

    type: Literal["int", "float", "bool", "enum", "string"]
    default: Any = None
    min: Number | None = None
    max: Number | None = None
    step: Number | None = None
    choices: list[Any] | None = None
    help: str = ""
    label: str = ""                                              # shown instead of the name
    choice_labels: dict[str, str] = Field(default_factory=dict)  # str(choice) -> shown instead of it

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        problems = self._shape_problems()
        if not problems:
            if self.default is None:
                self.default = self._implicit_default()
            try:
                self.default = self.check(self.default, lenient=False)
            except ValueError as e:
                problems.append(("default", str(e)))
        if problems:
            raise PydanticCustomError("param_spec", "{summary}", {
                "summary": "; ".join(f"{f}: {r}" for f, r in problems), "problems": problems})
        return self

    def _shape_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        numeric = self.type in ("int", "float")
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None and not numeric:
                problems.append((key, f"only int and float parameters take {key}"))
        if self.type == "enum" and not self.choices:
            problems.append(("choices", "an enum parameter needs a non-empty list of choices"))
        if self.type == "bool" and self.choices is not None:
            problems.append(("choices", "a bool parameter takes no choices"))
        if numeric and self.min is not None and self.max is not None and self.min > self.max:
            problems.append(("min", f"must be <= max ({self.max:g}), got {self.min:g}"))
        if self.step is not None and not self.step > 0:
            problems.append(("step", f"must be > 0, got {self.step:g}"))
        if self.choices and self.type != "enum":
            for i, choice in enumerate(self.choices):
                try:
                    self._check_type(choice, lenient=False)
                except ValueError as e:
                    problems.append((f"choices.{i}", str(e)))
        problems += [(f"choice_labels.{k}", f"not a choice; choices: {_show(self.choices or [])}")
                     for k in _unknown_choices(self, self.choice_labels)]
        return problems

    def display(self, name: str) -> str:
        """What a form calls this parameter: its label, else its name."""
        return self.label or name

    def choice_label(self, choice: Any) -> str:
        """What a form shows for `choice`: its label, else the choice itself."""
        return self.choice_labels.get(str(choice), str(choice))

    def localized(self, text: ParamText | None) -> ParamSpec:
        """This parameter with the label, help and choice labels of `text` where it gives them."""
        if text is None:
            return self
        return self.model_copy(update={"label": text.label or self.label, "help": text.help or self.help,
                                       "choice_labels": {**self.choice_labels, **text.choices}})

    def _implicit_default(self) -> Any:
        if self.choices:
            return self.choices[0]
        if self.type == "bool":
            return False
        if self.type == "string":
            return ""
        base = self.min if self.min is not None else (self.max if self.max is not None and self.max < 0 else 0)
        return float(base) if self.type == "float" else math.ceil(base)

    def _check_type(self, value: Any, lenient: bool) -> Any:
        if self.type == "enum":
            return _as_choice(value, self.choices or [], lenient)
        return _COERCERS[self.type](value, lenient)

    def check(self, value: Any, lenient: bool = True) -> Any:
        """The value as `predict` receives it; ValueError with the reason when it is refused.
        `lenient` accepts strings as a query string carries them ("1.5", "true", '["a", 1]')."""
        value = self._check_type(value, lenient)
        if self.type in ("int", "float"):
            reason = _range_reason(value, self.min, self.max)
            if reason:
                raise ValueError(reason)
        if self.choices and self.type != "enum":
            value = _as_choice(value, self.choices, lenient)
        return value


def _unknown_choices(spec: ParamSpec, labels: Mapping[str, str]) -> list[str]:
    """Keys of `labels` that name none of `spec`'s choices (any key when it has none)."""
    known = {str(c) for c in spec.choices or []}
    return [k for k in labels if k not in known]


class ParamText(BaseModel):
    """A parameter's texts in one language."""
    model_config = ConfigDict(extra="forbid")

    label: str = ""
    help: str = ""
    choices: dict[str, str] = Field(default_factory=dict)   # str(choice) -> label


class Texts(BaseModel):
    """The user-facing texts of a manifest in one language (`i18n: {zh: {...}}`)."""
    model_config = ConfigDict(extra="forbid")

    title: str = ""
    description: str = ""
    params: dict[str, ParamText] = Field(default_factory=dict)
    score: str = ""   # what the score means (help)
    labels: dict[str, str] = Field(default_factory=dict)   # a result's label or entity type -> shown instead


class ScoreSpec(BaseModel):
    """What the `score` of a result (and each value of a classification's `scores`) means.
    `kind` is one of SCORE_KINDS, which interfaces name in every language: probability (0-1,
    calibrated), confidence (0-1, not calibrated), margin (a distance past a decision boundary),
    neighbours (how many raw detections support a box), weight (a model's internal stage weight),
    similarity, distance (lower is closer), other. `min`/`max` give its range when it has one."""
    model_config = ConfigDict(extra="forbid")

    kind: Literal[SCORE_KINDS] = "other"  # type: ignore[valid-type]
    min: Number | None = None
    max: Number | None = None
    help: str = ""


class Demo(BaseModel):
    """A good first demo: `input` names a demo gallery item ("media/faces.jpg", or line n of a
    text file "text/reviews-en.txt#2"); `columns` are parameter sets the Compare page opens on,
    side by side (each checked against the parameters)."""
    model_config = ConfigDict(extra="forbid")

    input: str | None = None
    columns: list[dict[str, Any]] = Field(default_factory=list, max_length=4)


class Resources(BaseModel):
    """Limits per replica: cpus (fraction of cores) and memory ("512m", "2g"; a bare number is MB)."""
    model_config = ConfigDict(extra="forbid")

    cpus: float | None = Field(default=None, gt=0, le=256)
    memory: Annotated[str | None, BeforeValidator(_memory_to_str), AfterValidator(_check_memory)] = None

    @property
    def memory_mb(self) -> int | None:
        if self.memory is None:
            return None
        m = MEMORY_RE.fullmatch(self.memory.strip())
        assert m is not None
        return int(m[1]) * (1024 if m[2].lower() == "g" else 1)


class Manifest(BaseModel):
    """The validated content of algorithm.yaml."""
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, AfterValidator(_check_name)]
    title: Annotated[str, AfterValidator(_check_title)]
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    task: Task
    entrypoint: Annotated[str, AfterValidator(_check_entrypoint)] = "predict:Algorithm"
    server: Annotated[str | None, AfterValidator(_check_server)] = None
    params: Annotated[dict[ParamName, ParamSpec], AfterValidator(_check_param_count)] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    replicas: int = Field(default=1, ge=1, le=16)
    samples: list[Annotated[str, AfterValidator(_check_sample)]] = Field(default_factory=list)
    version_note: str | None = None
    tags: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=MAX_TAGS)
    score: ScoreSpec | None = None
    labels: dict[str, str] = Field(default_factory=dict)   # a result's label or entity type -> shown instead
    demo: Demo | None = None
    i18n: dict[LangCode, Texts] = Field(default_factory=dict)
    # an int parameter: the width (px) predict shrinks an image to first (0: none); see resize_width
    resize_param: str | None = None

    @model_validator(mode="after")
    def _texts_and_demo_match_params(self) -> Manifest:
        problems = [*self._i18n_problems(), *self._demo_problems(), *self._resize_problems()]
        if problems:
            raise PydanticCustomError("param_spec", "{summary}", {
                "summary": "; ".join(f"{f}: {r}" for f, r in problems), "problems": problems})
        return self

    def _i18n_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for lang, texts in self.i18n.items():
            for name, text in texts.params.items():
                spec = self.params.get(name)
                if spec is None:
                    known = ", ".join(self.params) or "none"
                    problems.append((f"i18n.{lang}.params.{name}", f"no such parameter; known: {known}"))
                    continue
                problems += [(f"i18n.{lang}.params.{name}.choices.{k}", "not a choice of the parameter")
                             for k in _unknown_choices(spec, text.choices)]
        return problems

    def _demo_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for i, column in enumerate(self.demo.columns if self.demo else []):
            try:
                validate_params(self, column)
            except ParamError as e:
                problems += [(f"demo.columns.{i}.{p.field}", p.reason) for p in e.problems]
        return problems

    def _resize_problems(self) -> list[tuple[str, str]]:
        if self.resize_param is None:
            return []
        spec = self.params.get(self.resize_param)
        if spec is None:
            return [("resize_param", f"no such parameter; known: {', '.join(self.params) or 'none'}")]
        if spec.type != "int":
            return [("resize_param", f"the parameter {self.resize_param} is {spec.type}; a width in pixels (int) "
                                     "expected")]
        return []

    def resize_width(self, params: Mapping[str, Any]) -> int | None:
        """The width (px) predict shrinks an image to with these `params` (defaults filled in where a
        value is missing): the value of `resize_param` when it is above 0, else None (the image is
        used at its size). A caller may send an image already at that width (a video's frames,
        `media.run_video(frame_width=...)`) and scale the results back; images narrower than it
        are sent as they are (the algorithm may enlarge them itself)."""
        if self.resize_param is None:
            return None
        value = params.get(self.resize_param, self.params[self.resize_param].default)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def localized(self, lang: str) -> Manifest:
        """This manifest with the texts of `lang` (from `i18n`) in place of the top-level ones it
        translates; itself when `i18n` has no such language."""
        texts = self.i18n.get(lang)
        if texts is None:
            return self
        score = self.score.model_copy(update={"help": texts.score}) if self.score and texts.score else self.score
        return self.model_copy(update={
            "title": texts.title or self.title, "description": texts.description or self.description,
            "params": {name: spec.localized(texts.params.get(name)) for name, spec in self.params.items()},
            "score": score, "labels": {**self.labels, **texts.labels}})

    def label(self, value: Any) -> str:
        """What an interface shows for a result's label or entity type `value`."""
        return self.labels.get(str(value), str(value))

    def params_schema(self) -> dict[str, Any]:
        """The parameters as a JSON Schema object (for generic clients and form builders)."""
        return {"type": "object", "additionalProperties": False,
                "properties": {name: _json_schema(spec) for name, spec in self.params.items()}}


def _json_schema(spec: ParamSpec) -> dict[str, Any]:
    kind = {"int": "integer", "float": "number", "bool": "boolean", "string": "string"}.get(spec.type)
    out: dict[str, Any] = {"default": spec.default}
    if kind:
        out["type"] = kind
    if spec.choices:
        out["enum"] = list(spec.choices)
    if spec.min is not None:
        out["minimum"] = spec.min
    if spec.max is not None:
        out["maximum"] = spec.max
    if spec.step is not None:
        out["x-step"] = spec.step  # a UI hint; not multipleOf, values between steps are accepted
    if spec.label:
        out["title"] = spec.label
    if spec.help:
        out["description"] = spec.help
    return out


# --- loading ------------------------------------------------------------------------------------

def _reason(err: Mapping[str, Any]) -> str:
    kind, msg = err["type"], str(err["msg"])
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "enum" and err["loc"] == ("task",):
        return f"{err['input']!r} is not a known task; one of: {', '.join(t.value for t in Task)}"
    if kind == "literal_error":
        return f"{err['input']!r} is not allowed; {msg.replace('Input should be', 'one of:')}"
    return msg.removeprefix("Value error, ").replace("Input should be", "must be")


def problems_from(error: ValidationError) -> list[ManifestProblem]:
    """Every pydantic error as a ManifestProblem with a dotted field path."""
    problems: list[ManifestProblem] = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"] if p != "[key]"]
        if err["type"] == "param_spec":
            problems += [ManifestProblem(".".join([*loc, f]), r) for f, r in err["ctx"]["problems"]]
        else:
            problems.append(ManifestProblem(".".join(loc) or MANIFEST_FILE, _reason(err)))
    return problems


def _read_yaml(text: str) -> tuple[Any, list[ManifestProblem]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        return None, [ManifestProblem(MANIFEST_FILE, f"YAML syntax error{where}: {problem}")]
    if data is None:
        return None, [ManifestProblem(MANIFEST_FILE, "empty")]
    if not isinstance(data, dict):
        return None, [ManifestProblem(MANIFEST_FILE, f"must be a mapping of fields, got {type(data).__name__}")]
    return data, []


def _validate(data: Any, extra: list[ManifestProblem]) -> Manifest:
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as e:
        raise ManifestError(problems_from(e) + extra) from None
    if extra:
        raise ManifestError(extra)
    return manifest


def parse_manifest(text: str) -> Manifest:
    """The manifest in `text`; ManifestError with every problem otherwise."""
    data, problems = _read_yaml(text)
    if problems:
        raise ManifestError(problems)
    return _validate(data, [])


def load_manifest(package_dir: Path) -> Manifest:
    """The manifest of the package in `package_dir`, with listed samples checked to exist.
    ManifestError with every problem otherwise ("algorithm.yaml: missing" without the file)."""
    path = Path(package_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError([ManifestProblem(MANIFEST_FILE, "missing")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        problem = ManifestProblem(MANIFEST_FILE, f"not UTF-8 text ({e.reason} at byte {e.start})")
        raise ManifestError([problem]) from None
    data, problems = _read_yaml(text)
    if problems:
        raise ManifestError(problems)
    return _validate(data, _missing_samples(Path(package_dir), data.get("samples")))


def _missing_samples(package_dir: Path, samples: Any) -> list[ManifestProblem]:
    if not isinstance(samples, list):
        return []
    return [ManifestProblem(f"samples.{i}", f"{s!r} not found in the package") for i, s in enumerate(samples)
            if isinstance(s, str) and s and not s.startswith("/") and ".." not in s and not (package_dir / s).is_file()]


# --- call parameters ----------------------------------------------------------------------------

class ParamValidator:
    """`validate_params` compiled once for one manifest: the runner's hot path uses this."""

    def __init__(self, params: Mapping[str, ParamSpec]) -> None:
        self._specs = dict(params)
        self._defaults = {name: spec.default for name, spec in params.items()}
        self._known = ", ".join(self._specs) or "none"

    def validate(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with the checked values of `raw` (None values mean "default")."""
        out = dict(self._defaults)
        if not raw:
            return out
        problems: list[ManifestProblem] = []
        for name, value in raw.items():
            spec = self._specs.get(name)
            if spec is None:
                problems.append(ManifestProblem(name, f"unknown parameter; known: {self._known}"))
            elif value is not None:
                try:
                    out[name] = spec.check(value, lenient=True)
                except ValueError as e:
                    problems.append(ManifestProblem(name, str(e)))
        if problems:
            raise ParamError(problems)
        return out


def validate_params(manifest: Manifest, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments for `predict`: defaults filled in, strings coerced, every value
    checked against the manifest. ParamError lists every bad or unknown parameter."""
    return ParamValidator(manifest.params).validate(raw)
