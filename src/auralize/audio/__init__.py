"""The sound engine: synthesis, score, offline render, live output, files, plots.

Imports no ML framework.
"""
