"""The Experiments page (AppTest) over a finished experiment whose items are written straight into
the database: the runs table, the charts, the worst items drawn, the exports; and the Run tab's
refusal of an out-of-range value, shown field by field."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.db import transaction
from app.invoke import content_hash
from app.models import Experiment, ExperimentItem
from tests.conftest import ADMIN, ROOT, browser_session

MAIN = str(ROOT / "app" / "main.py")
TEXTS = ["good", "bad", "fine", "awful"]
LABELS = ["positive", "negative", "positive", "negative"]


@pytest.fixture
def finished(platform, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("ALGOSTAGE_HOME", str(platform.home))
    monkeypatch.setenv("DATABASE_URL", platform.environ["DATABASE_URL"])
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "labels.csv").write_text("input,label\n" + "".join(f"{t},{lb}\n" for t, lb in zip(TEXTS, LABELS)))
    info = platform.datasets.upload(ADMIN, folder, name="tiny", task="text.classification")
    configs = [{"threshold": 0.1}, {"threshold": 0.9}]
    answers = [["positive", "negative", "positive", "positive"], ["negative", "negative", "negative", "negative"]]
    with transaction(platform.sessions) as s:
        exp = Experiment(service_name="sentiment", algorithm="sentiment", version="v1", dataset_id=info.id,
                         dataset_name="tiny", task="text.classification", space={"grid": {"threshold": [0.1, 0.9]}},
                         configs=configs, state="DONE", total=8, done=8, created_by=ADMIN.username)
        s.add(exp)
        s.flush()
        for c, labels in enumerate(answers):
            s.add_all(ExperimentItem(experiment_id=exp.id, config=c, item=i, params_hash=content_hash(configs[c]),
                                     input_hash=f"h{i}", status="ok", output={"label": lb, "score": 0.5,
                                                                             "scores": {lb: 0.9}},
                                     total_ms=10.0 + 5 * c + i, predict_ms=8.0, replica="r1", cached=False,
                                     started=float(i), ended=i + 0.5) for i, lb in enumerate(labels))
    return exp.id


def test_the_results_tab_shows_runs_charts_and_the_worst_items(finished, platform):
    at = AppTest.from_file(MAIN, default_timeout=60)
    for key, value in browser_session(platform, ADMIN.role).items():
        at.session_state[key] = value
    at.switch_page("../pages/experiments.py")
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["#"]) == [0, 1] and list(table["accuracy"]) == [0.75, 0.5]
    assert list(table["★"]) == ["★", ""]
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Pareto front" in spec for spec in charts) and any("Confusion matrix" in spec for spec in charts)
    items = at.dataframe[1].value
    assert list(items["#"])[0] == 3 and list(items["Score"])[0] == 0.0       # "awful" called positive: worst
    texts = " ".join(m.value for m in at.markdown)
    assert "awful" in texts and "**negative**" in texts and "**positive**" in texts   # truth and result drawn
    assert {b.proto.label for b in at.get("download_button")} == {"Export CSV", "HTML report"}


def test_the_run_tab_lists_the_datasets_and_adds_the_demo_ones(finished, platform):
    at = AppTest.from_file(MAIN, default_timeout=120)
    for key, value in browser_session(platform, ADMIN.role).items():
        at.session_state[key] = value
    at.switch_page("../pages/experiments.py")
    at.run()
    add = next(b for b in at.button if b.label == "Add the demo datasets")
    add.click().run()
    assert not at.exception, at.exception
    assert "Datasets (7)" in [e.label for e in at.expander]
