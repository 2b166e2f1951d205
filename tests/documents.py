"""Test inputs built from known Chinese text: a multi-page PDF, a scan, an .xlsx, a .docx with a table."""

from __future__ import annotations

import io
import re
import zipfile

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"  # fonts-noto-cjk, installed by scripts/test.sh

# Page 3 holds the fact the questions ask about; every page carries the same running header and a page number.
PAGES = [
    ["嘉陵江航运年度报告", "第一章 概况", "二〇二五年，嘉陵江航运保持平稳增长，全年客运量继续提高。",
     "沿江各区县码头完成了改造升级。"],
    ["第二章 货运", "全年货物吞吐量比上年增长百分之六。", "集装箱航线新增两条，通达长江下游主要港口。"],
    ["第三章 新船", "智能渡轮“渝智一号”于三月十八日开始试运行。", "该渡轮可搭载乘客一百二十人，最高航速每小时二十五公里。"],
    ["第四章 展望", "明年将继续建设智慧航道，推进船舶绿色化改造。"],
]
RUNNING_HEADER = "重庆市航运发展中心内部资料"


def text_pdf(pages=PAGES, header: str = RUNNING_HEADER, title: str = "嘉陵江航运年度报告（2025）") -> bytes:
    """Return a PDF with a text layer (ReportLab's built-in STSong CID font), a running header and page numbers."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setTitle(title)
    pdf.setCreator("test")
    for number, lines in enumerate(pages, 1):
        pdf.setFont("STSong-Light", 10)
        pdf.drawString(72, 800, header)
        y = 760
        pdf.setFont("STSong-Light", 12)
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 24
        pdf.setFont("STSong-Light", 10)
        pdf.drawString(280, 40, f"第 {number} 页")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def page_image(lines: list[str], width: int = 1240, size: int = 40):
    """Return a white page (PIL image) with `lines` drawn in Noto Sans CJK."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, size)
    image = Image.new("RGB", (width, 120 + len(lines) * int(size * 1.8)), "white")
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        draw.text((60, 60 + k * int(size * 1.8)), line, fill="black", font=font)
    return image


SCAN_LINES = ["渝智一号渡轮简介", "渡轮可搭载乘客一百二十人。", "最高航速每小时二十五公里。"]


def scanned_pdf(pages=(SCAN_LINES,)) -> bytes:
    """Return an image-only PDF (no text layer): each page a picture of known lines."""
    images = [page_image(list(lines)) for lines in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return buffer.getvalue()


def png(lines=SCAN_LINES) -> bytes:
    buffer = io.BytesIO()
    page_image(list(lines)).save(buffer, format="PNG")
    return buffer.getvalue()


def xlsx_bytes(cached_total: str | None = "4232.5") -> bytes:
    """Return an .xlsx: a two-row header (指标 merged down, 产量 merged across), a category merged down, a formula.

    openpyxl writes formulas without a computed value; Excel stores the value it computed in <v>, so
    the cached value is added to the sheet's XML as Excel would have it.
    """
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "港口吞吐量"
    sheet["A1"], sheet["B1"], sheet["D1"] = "港区", "货物吞吐量（万吨）", "备注"
    sheet["B2"], sheet["C2"] = "2024年", "2025年"
    sheet.merge_cells("A1:A2")
    sheet.merge_cells("B1:C1")
    sheet.merge_cells("D1:D2")
    rows = [("果园港", 2870.4, 3125.6, "铁水联运枢纽"), ("寸滩港", 1180.2, 1106.9, "转型为邮轮母港"),
            ("合计", "=B3+B4", "=C3+C4", "")]
    for r, row in enumerate(rows, 3):
        for c, value in enumerate(row, 1):
            sheet.cell(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    if cached_total is None:
        return data
    return _with_cached(data, {"B5": "4050.6", "C5": cached_total})


def _with_cached(data: bytes, values: dict[str, str]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                xml = body.decode("utf-8")
                for ref, value in values.items():
                    xml = re.sub(rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)(<v\s*/>|<v></v>)?', rf"\1\2<v>{value}</v>", xml)
                body = xml.encode("utf-8")
            target.writestr(item, body)
    return out.getvalue()


def docx_with_table() -> bytes:
    """Return a .docx: a paragraph, then a table of ferries (header row) with the fact in one cell."""
    import docx

    document = docx.Document()
    document.core_properties.title = "嘉陵江渡轮一览"
    document.add_paragraph("下表列出嘉陵江上运营的智能渡轮。")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([("船名", "载客量", "首航日期"), ("渝智一号", "120人", "2026年3月18日"),
                             ("渝智二号", "86人", "2026年5月2日")]):
        for c, value in enumerate(row):
            table.rows[r].cells[c].text = value
    document.add_paragraph("两艘渡轮均由重庆本地船厂建造。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# A report whose page 2 holds a ruled table (a header cell merged across two columns, two merged down)
# and whose page 3 holds an unruled one, its columns kept apart by white space only.
FERRY_TABLE = [("渝智一号", "120人", "25公里每小时", "2026年3月18日"), ("渝智二号", "86人", "22公里每小时", "2026年5月2日"),
               ("嘉陵三号", "150人", "18公里每小时", "2024年9月1日")]
PIER_TABLE = [("码头", "工作日", "周末"), ("朝天门", "3200人次", "5100人次"), ("磁器口", "1800人次", "4300人次"),
              ("北碚", "900人次", "1500人次")]


def table_pdf(header: str = RUNNING_HEADER) -> bytes:
    """Return a three-page PDF: prose, a ruled table with merged header cells (page 2), an unruled table (page 3)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setTitle("嘉陵江渡轮运行统计（2026）")

    def page(number, draw):
        pdf.setFont("STSong-Light", 10)
        pdf.drawString(72, 800, header)
        pdf.drawString(280, 40, f"第 {number} 页")
        pdf.setFont("STSong-Light", 12)
        draw()
        pdf.showPage()

    def prose():
        pdf.drawString(72, 760, "第一章 概况")
        pdf.drawString(72, 736, "嘉陵江上运营的渡轮共有三艘，本报告统计其技术参数和各码头客流。")
        pdf.drawString(72, 712, "统计数据由重庆市航运发展中心提供。")

    def ruled():
        pdf.drawString(72, 760, "表1 渡轮技术参数")
        xs, top, h = [72, 172, 252, 372, 500], 740, 24
        # (row, first column, last column, rows spanned, text): the header is two rows deep.
        cells = [(0, 0, 0, 2, "船名"), (0, 1, 2, 1, "运力"), (0, 3, 3, 2, "首航日期"), (1, 1, 1, 1, "载客量"),
                 (1, 2, 2, 1, "最高航速")]
        cells += [(r + 2, c, c, 1, value) for r, row in enumerate(FERRY_TABLE) for c, value in enumerate(row)]
        for row, first, last, span, text in cells:
            x0, x1, y1 = xs[first], xs[last + 1], top - row * h
            pdf.rect(x0, y1 - span * h, x1 - x0, span * h)
            pdf.drawString(x0 + 4, y1 - span * h / 2 - 4, text)
        pdf.drawString(72, top - (len(FERRY_TABLE) + 2) * h - 30, "上表数据截至二〇二六年六月。")

    def unruled():
        pdf.drawString(72, 760, "第二章 客流")
        pdf.drawString(72, 736, "各码头日均客流如下表，周末客流明显高于工作日。")
        pdf.drawString(72, 700, "表2 各码头日均客流")
        for r, row in enumerate(PIER_TABLE):
            for c, value in enumerate(row):
                pdf.drawString([72, 200, 320][c], 676 - r * 20, value)
        pdf.drawString(72, 580, "节假日客流另行统计。")

    for number, draw in enumerate((prose, ruled, unruled), 1):
        page(number, draw)
    pdf.save()
    return buffer.getvalue()


def two_column_pdf() -> bytes:
    """Return a one-page PDF of prose set in two columns, and a header line with a title left and a date right."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    left = ["嘉陵江航运保持平稳增长，", "全年客运量继续提高。沿江", "各区县码头完成了改造升级，", "新增泊位十二个。"]
    right = ["集装箱航线新增两条，通达", "长江下游主要港口。明年将", "继续建设智慧航道，推进船", "舶绿色化改造。"]
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setFont("STSong-Light", 12)
    pdf.drawString(72, 790, "航运简报")
    pdf.drawString(440, 790, "2026年1月")
    for k, (a, b) in enumerate(zip(left, right)):
        pdf.drawString(72, 750 - k * 20, a)
        pdf.drawString(320, 750 - k * 20, b)
    pdf.drawString(72, 640, "第 1 页")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def damaged_scan_png() -> bytes:
    """Return a .png whose last line has its lower part torn off: OCR reads it with confidence ~0.72 (< 0.8)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, 40)
    image = Image.new("RGB", (1240, 380), "white")
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(["渝智一号渡轮简介", "渡轮可搭载乘客一百二十人。", "码头位于朝天门广场东侧。"]):
        draw.text((60, 60 + k * 100), line, fill="black", font=font)
    draw.rectangle((0, 296, 1240, 340), fill="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
