"""Data for the sequence experiments (PAPER.md section 5), offline only (DESIGN.md: no downloads).

- `synthetic`: the conflicting successor domains with exact log-probabilities.
- `corpora`: real-text corpora from OS packages (byte tokens).

Import the submodule you need; this package imports none, so loading one never reads a corpus.
"""
