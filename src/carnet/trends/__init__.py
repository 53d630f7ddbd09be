"""Trends and alerts over a dossier's measurements (issue 17 §2–3, docs/MEASUREMENTS.md "Trends" and "Alerts").

``series`` (statistics, downsampling: pure), ``rules`` (the trend rules as data, their pure evaluator).
"""
