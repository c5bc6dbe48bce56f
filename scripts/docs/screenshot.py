"""Renders an HTML report to a PNG (for docs/): WeasyPrint lays the page out
(HTML, CSS, inline SVG, images) into a PDF, pdfium rasterises its pages,
which are stacked into one image.

    .venv-fixtures/bin/pip install weasyprint pypdfium2
    .venv-fixtures/bin/python scripts/docs/screenshot.py REPORT.html OUT.png
"""

import sys

import pypdfium2 as pdfium
import weasyprint
from PIL import Image


def main(html: str, out: str) -> None:
    pdf = weasyprint.HTML(filename=html).write_pdf(
        stylesheets=[weasyprint.CSS(string="@page { size: 1150px 1600px; margin: 0 }")]
    )
    doc = pdfium.PdfDocument(pdf)
    pages = [doc[i].render(scale=1.0).to_pil().convert("RGB") for i in range(len(doc))]
    w = max(p.width for p in pages)
    h = sum(p.height for p in pages)
    sheet = Image.new("RGB", (w, h), "white")
    y = 0
    for p in pages:
        sheet.paste(p, (0, y))
        y += p.height
    # drop the blank end of the last page
    gray = sheet.convert("L").point(lambda v: 255 if v < 250 else 0)
    box = gray.getbbox()
    if box:
        sheet = sheet.crop((0, 0, w, min(h, box[3] + 24)))
    sheet.save(out, optimize=True)
    print(f"{out}: {w}x{h}, {len(pages)} page(s)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
