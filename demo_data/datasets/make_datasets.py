"""Makes the labelled demo datasets in this folder (see README.md for what each is and where its
data comes from). Deterministic: the same files every run (fixed seeds). Run from the repository
root: `python demo_data/datasets/make_datasets.py`. Needs numpy and OpenCV only.

The texts are written for this project; the images are drawn here, or made from the OpenCV sample
images in demo_data/media (Apache-2.0) with boxes known by construction."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
MEDIA = HERE.parent / "media"

# --- sentiment ---------------------------------------------------------------------------------------

REVIEWS_EN = {
    "positive": [
        "The hotel was wonderful: friendly staff and a spotless room.", "Absolutely love this phone, fast and beautiful.",
        "Great value for money, I would buy it again.", "The food was delicious and the service excellent.",
        "What a fantastic concert, the band was amazing!", "Comfortable shoes, perfect fit, very happy.",
        "The course was clear, useful and fun.", "Best coffee in town, and the staff are lovely.",
        "Delivery was quick and the packaging was perfect.", "A brilliant book that I could not put down.",
        "The new update made everything faster and smoother.", "Our guide was kind, funny and knew everything.",
    ],
    "negative": [
        "The delivery was late and the box was damaged.", "Terrible support, nobody answered my emails.",
        "It broke after a week. I would not buy this again.", "The room was dirty and the bed was awful.",
        "Very disappointing film, boring and far too long.", "The app crashes every time I open it.",
        "Cold food, rude waiter, never again.", "The battery dies in two hours, what a waste of money.",
        "Noisy, crowded and overpriced.", "The instructions were confusing and parts were missing.",
        "I hate the new design, it is ugly and slow.", "Worst customer service I have ever had.",
    ],
    "neutral": [
        "The train leaves from platform 4 at 9:15.", "The package contains two cables and a manual.",
        "The museum opens at ten on weekdays.", "I ordered the blue version of the jacket.",
        "The meeting was moved to Thursday afternoon.", "The shop is on the corner of the main street.",
        "This model comes in three sizes.", "The report has twelve pages and four tables.",
        "We arrived at the airport at noon.", "The bus stops near the library.",
        "The phone has a six inch screen.", "The hotel is twenty minutes from the station.",
    ],
}

REVIEWS_ZH = {
    "positive": [
        "这家酒店非常好，服务热情，房间干净。", "手机运行很流畅，外观也很漂亮，非常满意。", "物流很快，包装完好，下次还会购买。",
        "菜的味道很好，服务员态度也很好。", "这本书写得太精彩了，强烈推荐。", "质量不错，性价比很高。",
        "老师讲得很清楚，课程很有收获。", "鞋子很舒服，尺码正合适，喜欢。", "音质很棒，续航也很给力。",
        "环境优美，空气清新，玩得很开心。", "客服回复及时，问题很快就解决了。", "做工精细，颜色和图片一样，好评。",
    ],
    "negative": [
        "快递太慢了，盒子还被压坏了。", "客服态度很差，问题一直没有解决。", "用了一个星期就坏了，再也不买了。",
        "房间又脏又吵，非常失望。", "电影很无聊，浪费时间。", "这个软件老是闪退，太差劲了。",
        "饭菜是凉的，服务员很不耐烦。", "电池太不耐用，半天就没电了。", "价格太贵，质量却很差。",
        "说明书看不懂，还少了零件。", "新版本又慢又难用，很失望。", "衣服掉色严重，和描述完全不符。",
    ],
}


def write_csv(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def sentiment(folder: Path, reviews: dict[str, list[str]]) -> None:
    rows = [(text, label) for i in range(12) for label, texts in reviews.items() for text in [texts[i]]]
    write_csv(folder / "labels.csv", ("input", "label"), rows)
    (folder / "classes.txt").write_text("\n".join(reviews) + "\n", encoding="utf-8")


# --- Chinese named entities --------------------------------------------------------------------------

NEWS_ZH = [
    ("习近平在北京会见了法国总统马克龙。", [("习近平", "PERSON"), ("北京", "LOCATION"), ("法国", "LOCATION"), ("马克龙", "PERSON")]),
    ("清华大学和北京大学联合发布了研究报告。", [("清华大学", "ORGANIZATION"), ("北京大学", "ORGANIZATION")]),
    ("李明上周从上海出发前往杭州。", [("李明", "PERSON"), ("上海", "LOCATION"), ("杭州", "LOCATION")]),
    ("中国银行在广州开设了新的分行。", [("中国银行", "ORGANIZATION"), ("广州", "LOCATION")]),
    ("王芳是复旦大学的一名教授。", [("王芳", "PERSON"), ("复旦大学", "ORGANIZATION")]),
    ("张伟和刘洋在深圳参加了会议。", [("张伟", "PERSON"), ("刘洋", "PERSON"), ("深圳", "LOCATION")]),
    ("联合国秘书长古特雷斯访问了日本。", [("联合国", "ORGANIZATION"), ("古特雷斯", "PERSON"), ("日本", "LOCATION")]),
    ("今天天气很好，我们去公园散步。", []),
    ("长江流经重庆、武汉和南京。", [("长江", "LOCATION"), ("重庆", "LOCATION"), ("武汉", "LOCATION"), ("南京", "LOCATION")]),
    ("华为公司在巴黎发布了新手机。", [("华为公司", "ORGANIZATION"), ("巴黎", "LOCATION")]),
    ("陈晓东毕业于浙江大学。", [("陈晓东", "PERSON"), ("浙江大学", "ORGANIZATION")]),
    ("国家统计局公布了上个月的数据。", [("国家统计局", "ORGANIZATION")]),
    ("赵丽颖在西安拍摄新电影。", [("赵丽颖", "PERSON"), ("西安", "LOCATION")]),
    ("美国和加拿大签署了新的贸易协议。", [("美国", "LOCATION"), ("加拿大", "LOCATION")]),
    ("周杰伦将在台北举办演唱会。", [("周杰伦", "PERSON"), ("台北", "LOCATION")]),
    ("世界卫生组织发布了新的健康指南。", [("世界卫生组织", "ORGANIZATION")]),
    ("孙悦和妹妹去了成都旅游。", [("孙悦", "PERSON"), ("成都", "LOCATION")]),
    ("中国科学院的研究人员在南极进行考察。", [("中国科学院", "ORGANIZATION"), ("南极", "LOCATION")]),
    ("马云创办了阿里巴巴集团。", [("马云", "PERSON"), ("阿里巴巴集团", "ORGANIZATION")]),
    ("这道菜的做法其实很简单。", []),
    ("黄河是中国第二长的河流。", [("黄河", "LOCATION"), ("中国", "LOCATION")]),
    ("刘德华出生于香港。", [("刘德华", "PERSON"), ("香港", "LOCATION")]),
    ("北京市政府宣布了新的交通政策。", [("北京市政府", "ORGANIZATION")]),
    ("李娜在澳大利亚网球公开赛上夺冠。", [("李娜", "PERSON"), ("澳大利亚", "LOCATION")]),
]


def news_ner(folder: Path) -> None:
    lines = []
    for text, entities in NEWS_ZH:
        spans, taken = [], 0
        for surface, kind in entities:
            start = text.index(surface, taken)
            spans.append({"start": start, "end": start + len(surface), "type": kind})
            taken = start + len(surface)
        lines.append(json.dumps({"text": text, "entities": spans}, ensure_ascii=False))
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "types.txt").write_text("PERSON\nLOCATION\nORGANIZATION\n", encoding="utf-8")


# --- shapes for edge regions ---------------------------------------------------------------------------

def shapes(folder: Path, n: int = 30) -> None:
    """Flat shapes on a grey, noisy background: their bounding boxes are the truth (category
    "contour", the label edges-canny gives a region). Contrast and noise vary, so thresholds matter."""
    rng = np.random.default_rng(12)
    images, anns = [], []
    for i in range(n):
        h, w = 120, 160
        base = int(rng.integers(80, 170))
        img = np.full((h, w, 3), base, np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            box = _shape(img, rng, base, [a["bbox"] for a in anns if a["image_id"] == i + 1])
            if box:
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": box})
        noise = rng.normal(0, [2, 6, 12][i % 3], img.shape)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
        name = f"images/shape-{i:02d}.png"
        cv2.imwrite(str(folder / name), img)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    _coco(folder, images, anns, "contour")


def _shape(img: np.ndarray, rng: np.random.Generator, base: int, taken: list[list[int]]) -> list[int] | None:
    h, w = img.shape[:2]
    size = int(rng.integers(18, 40))
    x, y = int(rng.integers(4, w - size - 4)), int(rng.integers(4, h - size - 4))
    if any(x < bx + bw + 6 and bx < x + size + 6 and y < by + bh + 6 and by < y + size + 6 for bx, by, bw, bh in taken):
        return None
    contrast = int(rng.choice([25, 50, 90])) * int(rng.choice([-1, 1]))
    colour = (int(np.clip(base + contrast, 0, 255)),) * 3
    kind = int(rng.integers(0, 3))
    if kind == 0:
        cv2.rectangle(img, (x, y), (x + size - 1, y + size - 1), colour, -1)
    elif kind == 1:
        r = size // 2
        cv2.circle(img, (x + r, y + r), r, colour, -1)
        size = 2 * r + 1
    else:
        pts = np.array([[x, y + size - 1], [x + size - 1, y + size - 1], [x + size // 2, y]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    return [x, y, size, size]


# --- faces -----------------------------------------------------------------------------------------------

MESSI_FACE = (218, 90, 42, 42)          # annotated by hand on demo_data/media/messi5.jpg (brow to chin, ear to ear)
BACKGROUNDS = ["home.jpg", "fruits.jpg", "butterfly.jpg", "basketball1.png"]


def faces(folder: Path) -> None:
    """messi5.jpg as it is, and its face region pasted at known places and scales onto the other
    demo images (some blurred or darkened), plus those images with no face at all."""
    rng = np.random.default_rng(5)
    messi = cv2.imread(str(MEDIA / "messi5.jpg"))
    fx, fy, fw, fh = MESSI_FACE
    m = 24                                   # the crop keeps some hair and shirt around the face
    crop = messi[fy - m:fy + fh + m, fx - m:fx + fw + m]
    images, anns = [], []

    def add(img: np.ndarray, boxes: list[list[float]]) -> None:
        name = f"images/face-{len(images):02d}.jpg"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": len(images) + 1, "file_name": name, "width": img.shape[1], "height": img.shape[0]})
        for b in boxes:
            anns.append({"id": len(anns) + 1, "image_id": len(images), "category_id": 1, "bbox": b})

    add(messi, [list(MESSI_FACE)])
    for k in range(20):
        bg = cv2.resize(cv2.imread(str(MEDIA / BACKGROUNDS[k % len(BACKGROUNDS)])), (400, 300))
        if k % 5 == 4:
            add(bg, [])
            continue
        scale = [0.9, 1.2, 1.6, 2.0][k % 4]
        patch = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        ph, pw = patch.shape[:2]
        x, y = int(rng.integers(0, 400 - pw)), int(rng.integers(0, 300 - ph))
        bg[y:y + ph, x:x + pw] = patch
        if k % 3 == 1:
            bg = cv2.GaussianBlur(bg, (5, 5), 0)
        if k % 3 == 2:
            bg = (bg * 0.45).astype(np.uint8)
        add(bg, [[round(x + m * scale, 1), round(y + m * scale, 1), round(fw * scale, 1), round(fh * scale, 1)]])
    _coco(folder, images, anns, "face")


# --- OCR ---------------------------------------------------------------------------------------------------

SIGNS = ["OPEN 24 HOURS", "EXIT", "NO PARKING", "PLATFORM 4", "SALE 50% OFF", "WELCOME", "TICKETS", "CITY CENTRE",
         "PUSH", "PULL", "FIRE DOOR KEEP SHUT", "LIBRARY", "GATE B12", "ROOM 305", "PLEASE WAIT HERE", "COFFEE & TEA"]


def signs(folder: Path) -> None:
    """Printed words drawn with OpenCV's Hershey fonts, at several sizes, some blurred or noisy."""
    rng = np.random.default_rng(7)
    rows = []
    fonts = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX]
    for i, text in enumerate(SIGNS):
        font, scale = fonts[i % 3], [0.9, 1.2, 1.6][i % 3]
        (tw, th), _ = cv2.getTextSize(text, font, scale, 2)
        img = np.full((th + 40, tw + 40, 3), 245 if i % 2 else 255, np.uint8)
        cv2.putText(img, text, (20, th + 18), font, scale, (20, 20, 20), 2, cv2.LINE_AA)
        if i % 4 == 3:
            img = cv2.GaussianBlur(img, (3, 3), 0)
        if i % 5 == 4:
            img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        name = f"images/sign-{i:02d}.png"
        cv2.imwrite(str(folder / name), img)
        rows.append((name, text))
    write_csv(folder / "labels.csv", ("input", "text"), rows)


# --- all -----------------------------------------------------------------------------------------------------

def _coco(folder: Path, images: list, anns: list, category: str) -> None:
    (folder / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": category}]}, indent=1) + "\n")


MAKERS = {"reviews-en": lambda f: sentiment(f, REVIEWS_EN), "reviews-zh": lambda f: sentiment(f, REVIEWS_ZH),
          "news-zh-ner": news_ner, "shapes": shapes, "faces": faces, "signs-ocr": signs}


def main() -> None:
    for name, make in MAKERS.items():
        folder = HERE / name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "images").mkdir(parents=True)
        make(folder)
        if not any((folder / "images").iterdir()):
            (folder / "images").rmdir()
        print(f"{name}: {sum(1 for _ in folder.rglob('*') if _.is_file())} files")


if __name__ == "__main__":
    main()
