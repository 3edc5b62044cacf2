"""requirements.txt checks: every way of redirecting pip away from the index is refused (unless
allowed), invalid lines always are, and each message names its line."""
import pytest

from app.catalog.sources import check_requirements

REDIRECTS = [
    "--index-url https://evil.example/simple",
    "--index-url=https://evil.example/simple",
    "-i https://evil.example/simple",
    "-ihttps://evil.example/simple",
    "--extra-index-url https://evil.example/simple",
    "-f https://evil.example/wheels/",
    "--find-links ./wheels",
    "--trusted-host evil.example",
    "-e .",
    "--editable git+https://github.com/x/y.git#egg=y",
    "-r other.txt",
    "--requirement other.txt",
    "-c constraints.txt",
    "--constraint=constraints.txt",
    "--no-index",
    "./local_pkg",
    "../sibling",
    "/abs/path/pkg",
    "~/pkg",
    "file:///tmp/pkg.whl",
    "git+https://github.com/x/y.git@v1#egg=y",
    "https://evil.example/pkg-1.0-py3-none-any.whl",
    "pkg-1.0-py3-none-any.whl",
    "vendor/pkg.tar.gz",
    "requests @ https://evil.example/requests.whl",
    "requests @ file:///tmp/requests.whl",
]


@pytest.mark.parametrize("line", REDIRECTS)
def test_each_redirect_form_is_refused_with_its_line_number(line):
    problems = check_requirements(f"numpy==2.0\n# a comment\n{line}\n", allow_redirects=False)
    assert len(problems) == 1, problems
    assert problems[0].startswith("line 3: ")
    assert "not allowed" in problems[0]


@pytest.mark.parametrize("line", REDIRECTS)
def test_each_redirect_form_is_accepted_when_redirects_are_allowed(line):
    assert check_requirements(f"numpy==2.0\n{line}\n", allow_redirects=True) == []


def test_ordinary_requirements_pass():
    text = """
# the model
numpy>=1.26,<3
opencv-python-headless==4.10.0.84   # comment after a requirement
torch[cpu] ~= 2.3 ; python_version >= "3.10"
pydantic==2.* \\
    --hash=sha256:0123456789abcdef
--prefer-binary
--only-binary=:all:
"""
    assert check_requirements(text, allow_redirects=False) == []


def test_invalid_lines_are_refused_even_when_redirects_are_allowed():
    text = "numpy==2.0\nthis is not a requirement!\n--weird-option x\nfoo==1.0 --global-option=--evil\n"
    for allow in (False, True):
        problems = check_requirements(text, allow_redirects=allow)
        assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4"]
        assert "is not a valid requirement" in problems[0]
        assert "option '--weird-option' is not supported" in problems[1]
        assert "'--global-option' is not supported" in problems[2]


def test_every_offending_line_is_reported():
    text = "-i https://a.example/simple\nok==1\n./x\nbad line here\n"
    problems = check_requirements(text, allow_redirects=False)
    assert [p.split(":")[0] for p in problems] == ["line 1", "line 3", "line 4"]


def test_continuation_lines_report_the_first_line():
    problems = check_requirements("ok==1\n--extra-index-url \\\n  https://evil.example/simple\n", False)
    assert len(problems) == 1 and problems[0].startswith("line 2: --extra-index-url")


def test_empty_file_is_fine():
    assert check_requirements("", allow_redirects=False) == []
    assert check_requirements("\n# only comments\n\n", allow_redirects=False) == []
