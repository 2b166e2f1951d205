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
