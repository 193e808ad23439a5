"""What the report shows besides figures: tables as pages (lth/report/html.py), the training recipe
in captions (lth/report/recipe.py) and the landing page's context (lth/report/landing.py). The
report itself, built by Snakemake, is checked in tests/test_workflow.py."""

from __future__ import annotations

import copy
import html.parser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from lth.cli import main
from lth.io import seal_file
from lth.report.html import shown, write_csv_html
from lth.report.landing import landing_context
from lth.report.recipe import recipe_text

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


class _Tables(html.parser.HTMLParser):
    """Every <table> of a page: its header and rows of (text, data-value or None, title or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.headings: list[str] = []
        self._cell: list | None = None
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"header": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = [tag, "", attrs.get("data-value"), attrs.get("title")]
        elif tag == "h2":
            self._heading = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1] += data
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            kind, text, value, title = self._cell
            table = self.tables[-1]
            if kind == "th":
                table["header"].append(text)
            else:
                table["rows"][-1].append((text, value, title))
            self._cell = None
        elif tag == "h2":
            self.headings.append("".join(self._heading or []))
            self._heading = None


def page_tables(text: str) -> tuple[list[dict], list[str]]:
    """The tables of an HTML page (header, and rows of cells without the header row) and its <h2>s."""
    parser = _Tables()
    parser.feed(text)
    for table in parser.tables:
        table["rows"] = [row for row in table["rows"] if row]  # the header's <tr> holds <th>s only
    return parser.tables, parser.headings


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12.36263736", "12.36"),
        ("19.9990845", "20"),
        ("0.0", "0"),
        ("0.001234", "0.0012"),
        ("-3.02197802", "-3.02"),
        ("44622", "44622"),
        ("magnitude", "magnitude"),
        ("", ""),
        ("nan", "nan"),
        ("1e-05", "1e-05"),
    ],
)
def test_numbers_are_shown_rounded_and_words_as_written(text, expected):
    assert shown(text) == expected


def test_a_csv_page_holds_every_cell_with_its_exact_value(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("variant,test_acc_pct,run\nat+trt,12.36263736,<runs/a & b>\nlth,9.5,runs/c\n")
    page = tmp_path / "t.html"
    write_csv_html(csv, page)
    (table,), _ = page_tables(page.read_text())
    assert table["header"] == ["variant", "test_acc_pct", "run"]
    assert table["rows"] == [
        [("at+trt", None, None), ("12.36", "12.36263736", "12.36263736"), ("<runs/a & b>", None, None)],
        [("lth", None, None), ("9.5", "9.5", None), ("runs/c", None, None)],
    ]
    assert "<script>" in page.read_text() and "http" not in page.read_text()  # self-contained


def _activations(root: Path) -> Path:
    """A collected activation_sparsity.csv: two seeds of the dense run and `lth` at level 1, two
    thresholds, the whole network and one stage."""
    rows = []
    for seed in (0, 1):
        for variant, level, sparsity in (("dense", 0, 0.0), ("lth", 1, 20.0)):
            for threshold, scale in ((0.0, 1.0), (0.01, 2.0)):
                for stage, base in (("all", 10.0), ("layer1", 30.0)):
                    rows.append(
                        {
                            "seed": seed,
                            "variant": variant,
                            "level": level,
                            "sparsity_pct": sparsity,
                            "epoch": 2,
                            "run": f"{variant}-{seed}",
                            "model": "resnet18",
                            "width": 4,
                            "dataset": "digits",
                            "train_epochs": 2,
                            "stage": stage,
                            "near_zero": 1,
                            "total": 1,
                            "near_zero_pct": scale * (base + level + seed),
                            "threshold": threshold,
                        }
                    )
    path = root / "activation_sparsity.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    seal_file(path)
    return path


def test_table_a1_page_has_the_images_cells_one_table_per_threshold(tmp_path):
    csv = _activations(tmp_path)
    outputs = [tmp_path / "a1.html", tmp_path / "a1.csv"]
    assert main(["figure", "tableA1_activation_sparsity", "--csv", str(csv), "--out", *map(str, outputs)]) == 0
    tables, headings = page_tables(outputs[0].read_text())
    assert headings == ["|a| <= 0", "|a| <= 0.01"]
    pivot = pd.read_csv(outputs[1])
    for threshold, table in zip((0.0, 0.01), tables):
        assert table["header"] == ["variant", "level", "sparsity (%)", "all", "layer1"]
        rows = pivot[pivot["threshold"] == threshold]
        assert [cell[0] for cell in table["rows"][1][:2]] == ["lth", "1"]
        lth = rows[rows["variant"] == "lth"].iloc[0]
        # Seeds 0 and 1: mean base + level + 0.5, std 0.71 (x2 at the second threshold).
        assert table["rows"][1][3][0] == f"{lth['all_mean_pct']:.1f} ± {lth['all_std_pct']:.2g}"
    assert tables[1]["rows"][1][3][0] == "23.0 ± 1.4"


def _config(path: Path, **changes) -> dict:
    config = yaml.safe_load(path.read_text())
    config.update(copy.deepcopy(changes))
    validate(config, str(SCHEMA))  # the schema's defaults, as the Snakefile fills them in
    return config


def test_the_recipe_names_optimizer_batch_size_and_gradinit_where_on():
    quickstart = recipe_text(_config(REPO / "configs" / "quickstart.yaml"))
    for words in (
        "SGD (momentum 0.9) for 10 epochs",
        "learning rate 0.1, x0.1 after epochs 5 and 8",
        "batch size 64",
        "weight decay 0.0002",
        "at+trt: label smoothing 0.1 (official form)",
        "at+trt: GradInit (sgd, normalized gradient, 20 iterations of batch size 64, eta 0.1, gamma 1, "
        "learning rate 0.01, min scale 0.01, grad clip 1",
        "IMP rounds re-train from theta0, pruning 0.6 per round (global)",
    ):
        assert words in quickstart, words
    vanilla = recipe_text(_config(REPO / "configs" / "quickstart.yaml", variants=["lth", "rewind"], rewind_epoch=2))
    assert "GradInit" not in vanilla and "label smoothing" not in vanilla
    assert "rewind: weights rewound to dense epoch 2" in vanilla


def test_the_landing_context_holds_the_config_files_code_and_resolved_settings(monkeypatch):
    import lth.report.landing as landing

    config = _config(REPO / "configs" / "quickstart.yaml")
    context = landing_context({"quickstart": config}, [REPO / "configs" / "quickstart.yaml"])
    assert context["config_files"][0]["path"].endswith("configs/quickstart.yaml")
    assert len(context["config_files"][0]["sha256"]) == 12 and len(context["source_sha256"]) == 64
    experiment = context["experiments"]["quickstart"]
    assert yaml.safe_load(experiment["settings"]) == config  # every setting, defaults included
    assert "train:" in experiment["settings"] and "weight_decay: 0.0002" in experiment["settings"]
    assert experiment["summary"].startswith("resnet18 (width 4) on digits, seeds 0; masks IMP at rate 0.6; 6 levels")
    monkeypatch.setattr(landing, "git_commit", lambda: "unknown")
    assert landing_context({"quickstart": config}, [])["git_commit"] == ""  # the page says: not a git checkout
