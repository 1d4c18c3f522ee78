"""SimLabel: similarity-weighted semi-supervision for multi-annotator learning with missing labels."""

__version__ = "0.1.0"
