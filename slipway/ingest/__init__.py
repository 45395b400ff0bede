"""Ingestion: landing files -> bronze (raw lines + lineage) -> silver (typed, contracted) + quarantine."""
