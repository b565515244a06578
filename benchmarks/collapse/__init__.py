"""The collapse loop (DESIGN §9): does filtering watermarked images out of the training pool slow collapse?

Modules, one job each: `config` (presets and arms), `batch` (a pool of items with their provenance),
`channel` (what a scraper receives: an attack chain on every image), `filters` (the arms' keep/drop
rules), `metrics` (pure metric and summary functions), `loop` (one (regime, arm, seed) cell, resumable
cell files), `world` (the shipped bitmark generator as a world the loop runs), `toy` (a Gaussian fitted by
maximum likelihood, the same loop), `report` (CSV, plot, summary) and `run` (what `bitmark collapse` calls).
"""
