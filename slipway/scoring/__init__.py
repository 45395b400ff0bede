"""Scoring: batch (champion plus challenger in shadow) and online (one transaction, low latency)."""
