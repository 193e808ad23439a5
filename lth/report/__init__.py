"""Tables and figures from CSVs: CSV in, tables and figures out; no model, training or analysis code.

- summary.py: summary.csv (`lth aggregate`), reading it, its rows by variant and mask source;
- collect.py: per-run analysis outputs into long-form CSVs (`lth analyze collect`, `lth analyze merge`);
- tickets.py: tickets.csv, the paper's headline numbers (`lth tickets`);
- style.py: what every figure shares (colours, titles, the sparsity axis, saving);
- accuracy.py and analysis.py: the drawing of accuracy and analysis figures;
- registry.py: every `lth figure` NAME, one entry each (FIGURES).
"""
