"""f1-assets: an F1 data platform built as a Dagster asset graph.

Data provided by Jolpica/Ergast (https://github.com/jolpica/jolpica-f1) and F1 live timing via FastF1.
"""
