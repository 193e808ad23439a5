"""Tables as HTML pages, for the Snakemake report.

`snakemake --report` offers a CSV only as a download link; an HTML file it shows inline (in a frame).
So each table the report shows is also written as a small self-contained page beside its CSV, by
the command that writes the CSV: summary.csv -> summary.html (`lth aggregate --html`), tickets.csv
-> tickets.html (`lth tickets --html`), Table A1 -> tableA1_activation_sparsity.html (`lth figure`).
The CSV stays the data; the page shows it: numbers rounded for reading (the exact value in each
cell's tooltip and used for sorting), columns sortable by a click on their header, rows filtered
by a search box. The page needs no network and no library: a few lines of script, and the table
reads the same without them.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Sequence
from pathlib import Path

from lth.errors import LthError
from lth.io import atomic_write_text

STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 12px; color: #1f2937; }
h1 { font-size: 16px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 16px 0 4px; }
p { margin: 0 0 8px; max-width: 70em; }
input { font: inherit; padding: 2px 6px; margin: 0 0 8px; width: 20em; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; border-bottom: 1px solid #e5e7eb; white-space: nowrap; text-align: left; }
th { position: sticky; top: 0; background: #f3f4f6; cursor: pointer; user-select: none; }
th[data-order="up"]::after { content: " \\25B2"; } th[data-order="down"]::after { content: " \\25BC"; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f9fafb; }
"""

# Sorting and filtering: rows keep their DOM nodes, so the tooltips (exact values) move with them.
SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var up = th.dataset.order !== "up";
      table.querySelectorAll("thead th").forEach(function (other) { delete other.dataset.order; });
      th.dataset.order = up ? "up" : "down";
      var key = function (row) { var cell = row.cells[column]; return cell.dataset.value ?? cell.textContent; };
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
        return up ? order : -order;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.querySelector("input").addEventListener("input", function (event) {
  var words = event.target.value.toLowerCase().split(/\\s+/).filter(Boolean);
  document.querySelectorAll("tbody tr").forEach(function (row) {
    var text = row.textContent.toLowerCase();
    row.hidden = !words.every(function (word) { return text.includes(word); });
  });
});
"""


def shown(text: str) -> str:
    """A CSV cell as the page shows it: a fraction-bearing number at 2 decimals (2 significant
    digits below 0.01, where 2 decimals would read 0), trailing zeros dropped; anything else as is."""
    if not text or "." not in text and "e" not in text.lower():
        return text  # empty, an integer, or a word
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    if value == 0:
        return "0"
    if abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _cell(text: str) -> str:
    if not _is_number(text):
        return f"<td>{html.escape(text)}</td>"
    display = shown(text)
    exact = "" if display == text else f' title="{html.escape(text)}"'
    return f'<td class="number" data-value="{html.escape(text)}"{exact}>{html.escape(display)}</td>'


def table_html(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """One <table>: a header row of `columns`, then `rows` of cell texts (numbers shown rounded)."""
    header = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "\n".join(f"<tr>{''.join(_cell(str(cell)) for cell in row)}</tr>" for row in rows)
    return f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def html_page(
    title: str, tables: Sequence[tuple[str | None, Sequence[str], Sequence[Sequence[str]]]], note: str = ""
) -> str:
    """A self-contained page: `title`, `note`, a row filter, then each (heading, columns, rows) table."""
    sections = "\n".join(
        (f"<h2>{html.escape(heading)}</h2>\n" if heading else "") + table_html(columns, rows)
        for heading, columns, rows in tables
    )
    rows = sum(len(table[2]) for table in tables)
    paragraph = f"<p>{html.escape(note)}</p>\n" if note else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{paragraph}"
        f'<input type="search" placeholder="Filter rows (words, all must match)" aria-label="Filter rows"> '
        f"{rows} row{'s' if rows != 1 else ''}; click a column's header to sort by it.\n"
        f"{sections}\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def write_csv_html(csv_path: str | Path, out: str | Path, title: str | None = None) -> None:
    """The CSV `csv_path` (just written by the caller) as the page `out`, titled with its path."""
    try:
        with open(csv_path, newline="") as handle:
            reader = csv.reader(handle)
            columns = next(reader, [])
            rows = list(reader)
    except OSError as error:
        raise LthError(f"{csv_path} cannot be read ({error.strerror})") from None
    note = f"The table {csv_path}, {len(rows)} rows; the page shows numbers rounded (hover a cell for its exact value)."
    atomic_write_text(out, html_page(title or str(csv_path), [(None, columns, rows)], note))
