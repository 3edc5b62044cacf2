"""Pure helpers of the result views (components/results.py, components/video_compare_view.py)."""
from __future__ import annotations

from app.showcase.runs import Column
from app.showcase.video_compare import VideoPairSummary
import pytest

from components.results import column_labels, highlight, literal
from components.video_compare_view import video_pair_row


def test_column_labels_name_the_parameters_that_set_a_column_apart() -> None:
    columns = [Column("face-detect", {"model": "haar_default", "min_size": 30}),
               Column("face-detect", {"model": "lbp", "min_size": 30}),
               Column("person-detect", {"stride": 8})]
    assert column_labels(columns) == ["1. face-detect · model=haar_default", "2. face-detect · model=lbp",
                                      "3. person-detect"]
    assert column_labels([Column("a", {"x": 1}), Column("a", {"x": 1})]) == ["1. a", "2. a"]


def test_highlight_escapes_text_and_marks_entities() -> None:
    out = highlight("<b>北京</b>很美", [{"text": "北京", "type": "LOC", "start": 3, "end": 5}])
    assert out.startswith('<div style="line-height:2">&lt;b&gt;<mark ')
    assert ">北京<sub" in out and ">LOC</sub></mark>&lt;/b&gt;很美</div>" in out


def test_video_pair_row_for_boxes_and_labels() -> None:
    boxes = video_pair_row(VideoPairSummary(0, 1, 10, matched=4, only_left=2, only_right=0, mean_iou=0.8,
                                            frames_agreeing=7))
    assert boxes["Pair"] == "1 ↔ 2" and boxes["Frames compared"] == 10   # the numbers of the column headings
    assert (boxes["Box agreement"], boxes["Frames in full agreement"], boxes["Mean IoU"]) == ("80%", "7/10", 0.8)
    labelled = video_pair_row(VideoPairSummary(0, 1, 4, label_agreement=0.75))
    assert labelled["Same label"] == "75%" and "Box agreement" not in labelled


@pytest.mark.parametrize("text, shown", [
    ("#", r"\#"), ("1. Haar", r"1\. Haar"), ("- x", r"\- x"), ("*x* _y_", r"\*x\* \_y\_"), ("14:05", r"14\:05"),
    ("[a](b)", r"\[a\](b)"), ("<b>", r"\<b\>"), ("Box (x, y · w×h)", "Box (x, y · w×h)"), ("0.95", "0.95"),
    ("-0.5", r"\-0.5"), ("北京", "北京"),
])
def test_table_cells_are_escaped_to_read_literally(text: str, shown: str) -> None:
    """st.table renders Markdown: a "#" header was an empty heading."""
    assert literal(text) == shown
