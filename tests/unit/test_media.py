"""app.media without video: format sniffing, image decode errors, encoders, drawing, summaries."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from app.media import (DEFAULT_PALETTE, MediaError, decode_image, draw, encode_jpeg, encode_raw, frame_summary,
                       label_color, scale_output, shrink_to_width, sniff, to_png)

from tests.conftest import demo_media

ROOT = Path(__file__).resolve().parents[2]


def picture(w: int = 320, h: int = 240) -> np.ndarray:
    """A smooth, non-uniform BGR test image."""
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    return np.dstack([x, y, (x + y) / 2]).astype(np.uint8)


def grey(w: int = 400, h: int = 300, value: int = 128) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


# --- sniff ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext, mime", [(".jpg", "image/jpeg"), (".png", "image/png"), (".bmp", "image/bmp"),
                                       (".gif", "image/gif"), (".webp", "image/webp"), (".tiff", "image/tiff")])
def test_sniff_names_images_encoded_by_opencv(ext, mime):
    ok, buf = cv2.imencode(ext, picture())
    assert ok
    assert sniff(buf.tobytes()) == mime


@pytest.mark.parametrize("head, mime", [
    (b"RIFF\x00\x10\x00\x00AVI LIST", "video/x-msvideo"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video/quicktime"),
    (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
    (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
    (b"FLV\x01\x05\x00\x00\x00\x09", "video/x-flv"),
])
def test_sniff_names_containers_by_magic_bytes(head, mime):
    assert sniff(head + bytes(400)) == mime


def test_sniff_reads_the_demo_video_as_avi():
    assert sniff(demo_media("vtest.avi").read_bytes()[:64]) == "video/x-msvideo"


@pytest.mark.parametrize("data", [b"", b"hello, world\n" * 20, np.random.default_rng(1).bytes(2048),
                                  b"%PDF-1.7\n", b"BM is not a bitmap"])
def test_sniff_returns_none_for_what_it_does_not_know(data):
    assert sniff(data) is None


# --- decode --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fruits.jpg", "messi5.jpg", "basketball1.png", "imageTextN.png"])
def test_decode_image_reads_the_demo_images_as_bgr(name):
    data = demo_media(name).read_bytes()
    image = decode_image(data)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    np.testing.assert_array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_png_and_jpeg_round_trip():
    image = picture()
    np.testing.assert_array_equal(decode_image(to_png(image)), image)
    lossy = decode_image(encode_jpeg(image, quality=95))
    assert lossy.shape == image.shape and np.abs(lossy.astype(int) - image).mean() < 3


def test_lower_jpeg_quality_gives_fewer_bytes():
    image = cv2.imread(str(demo_media("fruits.jpg")))
    assert len(encode_jpeg(image, quality=50)) < len(encode_jpeg(image, quality=95))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.999])
def test_truncated_jpeg_is_refused(keep):
    data = demo_media("messi5.jpg").read_bytes()
    with pytest.raises(MediaError, match="JPEG is truncated"):
        decode_image(data[:int(len(data) * keep)])


def test_jpeg_without_its_last_byte_is_refused():
    data = encode_jpeg(picture())
    with pytest.raises(MediaError, match="truncated"):
        decode_image(data[:-1])


def test_jpeg_with_an_embedded_thumbnail_and_trailing_bytes_decodes():
    """An APP1 segment holding a whole JPEG (like an EXIF thumbnail) and bytes after the end marker
    (like a phone's appended data) must not confuse the truncation check."""
    main, thumb = encode_jpeg(picture(320, 240)), encode_jpeg(picture(32, 24))
    payload = b"Exif\x00\x00" + thumb
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = main[:2] + app1 + main[2:] + b"\x00\x00trailing data \xff\xda\xff"
    assert decode_image(data).shape == (240, 320, 3)


def test_truncated_png_is_refused():
    data = to_png(picture())
    with pytest.raises(MediaError, match="PNG is truncated"):
        decode_image(data[:len(data) // 2])


def test_random_bytes_are_refused_as_unrecognised():
    with pytest.raises(MediaError, match="not in an image format we recognise"):
        decode_image(np.random.default_rng(7).bytes(10_000))


def test_a_text_file_is_refused_as_text():
    text = (ROOT / "requirements.txt").read_bytes()
    with pytest.raises(MediaError, match="not an image: the data is text"):
        decode_image(text)


def test_non_latin_text_is_still_text():
    with pytest.raises(MediaError, match="is text"):
        decode_image("文字识别的演示文本。\n".encode() * 50)


def test_empty_data_is_refused():
    with pytest.raises(MediaError, match="empty"):
        decode_image(b"")


def test_a_video_is_not_an_image():
    with pytest.raises(MediaError, match="video/x-msvideo cannot be decoded as an image"):
        decode_image(demo_media("vtest.avi").read_bytes()[:100_000])


def test_jpeg_with_garbage_instead_of_segments_is_refused():
    with pytest.raises(MediaError, match="JPEG is corrupt"):
        decode_image(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 5 + b"garbage" * 20)


@pytest.mark.parametrize("encode", [encode_jpeg, to_png])
def test_too_many_pixels_are_refused_before_decoding(encode):
    data = encode(picture(200, 100))
    assert decode_image(data, max_pixels=20_000).shape == (100, 200, 3)
    with pytest.raises(MediaError, match=r"200x100 = 0.0 megapixels, more than the 0.019999 allowed"):
        decode_image(data, max_pixels=19_999)


def test_a_png_header_claiming_a_huge_size_is_refused_without_decoding():
    data = bytearray(to_png(picture(64, 64)))
    data[16:24] = (100_000).to_bytes(4, "big") + (100_000).to_bytes(4, "big")   # IHDR width, height
    with pytest.raises(MediaError, match="100000x100000"):
        decode_image(bytes(data))


def test_too_large_webp_is_refused_after_decoding():
    ok, buf = cv2.imencode(".webp", picture(200, 100))
    with pytest.raises(MediaError, match="megapixels"):
        decode_image(buf.tobytes(), max_pixels=10_000)


def test_encoders_refuse_an_empty_array():
    for encode in (encode_jpeg, to_png):
        with pytest.raises(MediaError, match="empty"):
            encode(np.zeros((0, 0, 3), np.uint8))


def test_a_raw_frame_is_numpys_own_npy_of_the_pixels():
    import io
    image = picture(50, 30)
    body = encode_raw(image)
    assert body.startswith(b"\x93NUMPY") and len(body) == 128 + image.nbytes
    back = np.load(io.BytesIO(body), allow_pickle=False)
    assert back.dtype == np.uint8 and np.array_equal(back, image)
    assert np.array_equal(np.load(io.BytesIO(encode_raw(image[:, :, 0]))), image[:, :, 0])


@pytest.mark.parametrize("array", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8),
                                   np.zeros((0, 4, 3), np.uint8), np.zeros(12, np.uint8)])
def test_encode_raw_refuses_what_is_not_a_bgr_or_grey_frame(array):
    with pytest.raises(MediaError, match="cannot send a raw frame"):
        encode_raw(array)


# --- frames sent at the service's width ----------------------------------------------------------

def test_shrink_to_width_keeps_the_aspect_and_leaves_narrower_frames_alone():
    frame = picture(768, 576)
    small = shrink_to_width(frame, 640)
    assert small.shape == (480, 640, 3)
    area = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - area).mean() < 1   # within a level of averaging areas
    assert shrink_to_width(frame, 768) is frame and shrink_to_width(frame, 1024) is frame
    assert shrink_to_width(frame, None) is frame
    assert shrink_to_width(picture(101, 33), 50).shape == (16, 50, 3)


def test_a_frame_shrunk_by_more_than_half_is_averaged_not_sampled():
    stripes = np.zeros((576, 768, 3), np.uint8)
    stripes[:, ::2] = 255                      # one-pixel stripes: sampling would keep them black and white
    small = shrink_to_width(stripes, 256)      # by 3: each pixel averages three stripes, 85 or 170
    assert small.shape == (192, 256, 3)
    assert 60 < small.min() and small.max() < 200, (small.min(), small.max())


def test_boxes_are_scaled_back_by_their_corners_and_stay_whole_numbers():
    out = {"boxes": [{"x": 10, "y": 3, "w": 7, "h": 11, "label": "person", "score": 1.5}], "extra": 1}
    got = scale_output("video.detection", out, 1.2, 1.2)
    assert got == {"boxes": [{"x": 12, "y": 4, "w": 8, "h": 13, "label": "person", "score": 1.5}], "extra": 1}
    assert out["boxes"][0]["x"] == 10, "the service's output is not changed in place"


def test_fractional_boxes_stay_fractional_and_malformed_entries_are_kept_as_they_are():
    out = {"boxes": [{"x": 1.5, "y": 2.0, "w": 3.0, "h": 4.0}, {"x": "a", "y": 1, "w": 1, "h": 1}, "junk"]}
    got = scale_output("image.detection", out, 2.0, 0.5)
    assert got["boxes"] == [{"x": 3.0, "y": 1.0, "w": 6.0, "h": 2.0}, {"x": "a", "y": 1, "w": 1, "h": 1}, "junk"]


def test_ocr_boxes_and_polygons_are_scaled_text_is_not():
    out = {"lines": [{"text": "hi", "polygon": [[0, 0], [10, 0], [10, 5]], "box": {"x": 0, "y": 0, "w": 10, "h": 5}},
                     {"text": "no geometry"}]}
    got = scale_output("video.ocr", out, 2.0, 3.0)
    assert got["lines"][0] == {"text": "hi", "polygon": [[0, 0], [20, 0], [20, 15]],
                               "box": {"x": 0, "y": 0, "w": 20, "h": 15}}
    assert got["lines"][1] == {"text": "no geometry"}


@pytest.mark.parametrize("task, output", [("video.classification", {"label": "cat", "score": 0.9}),
                                          ("video.detection", ["not", "a", "dict"]),
                                          ("video.detection", {"boxes": "none"})])
def test_what_has_no_geometry_is_returned_as_it_is(task, output):
    assert scale_output(task, output, 2.0, 2.0) is output


# --- drawing -------------------------------------------------------------------------------------

BOX = {"x": 120, "y": 110, "w": 80, "h": 120, "label": "person", "score": 0.87}


def test_detection_box_changes_pixels_on_the_box_and_its_caption_only():
    image = grey()
    out = draw(image, "image.detection", {"boxes": [BOX]})
    diff = changed(image, out)
    x, y, w, h = BOX["x"], BOX["y"], BOX["w"], BOX["h"]
    assert diff[y + h // 2, x] and diff[y + h // 2, x + w] and diff[y, x + w // 2] and diff[y + h, x + w // 2]
    assert not diff[y + 10:y + h - 10, x + 10:x + w - 10].any()   # the inside of the box stays visible
    assert diff[y - 30:y, x:x + w].sum() > 100                     # the caption sits just above the box
    outside = diff.copy()
    outside[y - 40:y + h + 5, x - 5:x + w + 100] = False            # box, its caption, a little margin
    assert not outside.any()
    assert (image == 128).all(), "draw must not modify its input"


def test_box_outline_is_in_its_labels_colour_and_labels_differ():
    image = grey(value=255)
    boxes = [dict(BOX, label="person"), dict(BOX, x=260, label="car")]
    out = draw(image, "image.detection", {"boxes": boxes})
    assert tuple(out[BOX["y"] + 60, BOX["x"]]) == label_color("person")
    assert tuple(out[BOX["y"] + 60, 260]) == label_color("car")
    assert label_color("person") != label_color("car")


@pytest.mark.parametrize("tag, ink", [((255, 255, 255), 0), ((0, 0, 0), 255), ((0, 255, 255), 0), ((120, 0, 0), 255)])
def test_captions_use_ink_that_reads_on_the_tag(tag, ink):
    image = grey(value=128)
    out = draw(image, "image.detection", {"boxes": [BOX]}, palette=[tag])
    caption = out[BOX["y"] - 25:BOX["y"], BOX["x"]:BOX["x"] + 100]
    assert (caption == np.array(tag, np.uint8)).all(axis=2).sum() > 200        # the filled tag
    assert (np.abs(caption.astype(int) - ink) < 40).all(axis=2).sum() > 30     # its text, in contrasting ink


def test_caption_of_a_box_at_the_top_edge_stays_inside_the_image():
    image = grey()
    out = draw(image, "image.detection", {"boxes": [dict(BOX, y=0, x=390, w=10)]})
    assert changed(image, out)[0:20, 300:400].sum() > 100


def test_video_detection_draws_like_image_detection():
    image = grey()
    output = {"boxes": [BOX]}
    np.testing.assert_array_equal(draw(image, "video.detection", output), draw(image, "image.detection", output))


def test_malformed_boxes_are_skipped_and_the_rest_drawn():
    image = grey()
    boxes = [None, {"x": "a", "y": 1, "w": 2, "h": 3}, {"x": 1e308, "y": 0, "w": 1e308, "h": 1e308},
             {"x": float("nan"), "y": 0, "w": 5, "h": 5}, {"x": 10, "y": 10, "w": -5, "h": 5},
             {"x": True, "y": 0, "w": 5, "h": 5}, dict(BOX, label="行人", score="high")]
    out = draw(image, "image.detection", {"boxes": boxes})
    assert changed(image, out)[BOX["y"]:BOX["y"] + BOX["h"], BOX["x"]].all()


def test_grey_input_is_drawn_on_a_bgr_copy():
    out = draw(np.full((300, 400), 128, np.uint8), "image.detection", {"boxes": [BOX]})
    assert out.shape == (300, 400, 3) and tuple(out[BOX["y"] + 60, BOX["x"]]) == label_color("person")


def test_ocr_draws_polygons_boxes_and_numbers_not_text():
    image = grey(600, 400, value=230)
    polygon = [[100, 100], [300, 80], [305, 130], [105, 150]]
    lines = [{"text": "你好，世界", "score": 0.9, "box": {"x": 100, "y": 80, "w": 205, "h": 70}, "polygon": polygon},
             {"text": "second line", "box": {"x": 100, "y": 250, "w": 300, "h": 40}}]
    out = draw(image, "image.ocr", {"lines": lines})
    diff = changed(image, out)
    assert diff[90, 200] and diff[140, 205]                # the slanted polygon edges (mid-points)
    assert not diff[80, 300 - 3] or diff[82, 300]          # drawn as the polygon, not its bounding box
    assert not diff[82, 120]                               # the box corner area the polygon does not cover
    assert diff[270, 100] and diff[270, 400] and diff[250, 250] and diff[290, 250]   # the plain box
    assert diff[225:250, 100:130].sum() > 50               # the number tag of line 2
    assert not diff[300:, :].any() and not diff[:, 450:].any()


def test_ocr_lines_without_geometry_are_skipped():
    image = grey()
    out = draw(image, "image.ocr", {"lines": [{"text": "x"}, {"text": "y", "polygon": [[1, 2]]}, "bad"]})
    np.testing.assert_array_equal(out, image)


def test_classification_banner_darkens_the_top_and_leaves_the_rest():
    image = cv2.imread(str(demo_media("fruits.jpg")))
    out = draw(image, "image.classification", {"label": "fruit", "score": 0.93, "scores": {"fruit": 0.93}})
    diff = changed(image, out)
    assert diff[:10].mean() > 0.9 and (out[:3, 20:] <= image[:3, 20:]).all()   # the top strip is darkened
    assert out[:3, 20:].mean() < image[:3, 20:].mean() * 0.5
    assert not diff[image.shape[0] // 2:].any()
    bright = out[:40, 20:].max(axis=2) > 200               # the white caption text
    assert bright.sum() > 50


def test_classification_without_a_label_draws_nothing():
    image = grey()
    np.testing.assert_array_equal(draw(image, "image.classification", {"scores": {}}), image)


@pytest.mark.parametrize("task, output", [("text.classification", {"label": "pos", "score": 1.0}),
                                          ("json", {"boxes": [BOX]}), ("image.detection", None),
                                          ("image.detection", ["not", "a", "dict"])])
def test_unknown_task_or_output_returns_an_unchanged_copy(task, output):
    image = grey()
    out = draw(image, task, output)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_default_palette_colours_are_distinct():
    assert len(set(DEFAULT_PALETTE)) == len(DEFAULT_PALETTE) >= 8


# --- summaries -----------------------------------------------------------------------------------

def test_frame_summary_for_detection():
    outputs = [{"boxes": [{"score": 1.0}, {"score": 2.0}, {"label": "x"}]}, {"boxes": []}, {}]
    rows = frame_summary(outputs, "video.detection", latency_ms=[10.0, 11.0, 12.5], frame_indices=[0, 5, 10])
    assert rows == [{"frame": 0, "count": 3, "mean_score": 1.5, "latency_ms": 10.0},
                    {"frame": 5, "count": 0, "mean_score": None, "latency_ms": 11.0},
                    {"frame": 10, "count": 0, "mean_score": None, "latency_ms": 12.5}]


def test_frame_summary_for_ocr_and_classification():
    assert frame_summary([{"lines": [{"text": "a", "score": 0.5}]}], "image.ocr") == [
        {"frame": 0, "count": 1, "mean_score": 0.5, "latency_ms": None}]
    assert frame_summary([{"label": "cat", "score": 0.75}], "image.classification") == [
        {"frame": 0, "count": 1, "mean_score": 0.75, "label": "cat", "latency_ms": None}]


@pytest.mark.parametrize("score, shown", [(21.0, "face 21"), (21, "face 21"), (0.8523, "face 0.85"), (None, "face")])
def test_a_box_label_shows_a_count_as_a_whole_number_and_a_probability_with_two_decimals(score, shown):
    from app.media import _fmt_score
    assert f"face {_fmt_score(score)}".strip() == shown
