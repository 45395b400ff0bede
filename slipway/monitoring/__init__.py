"""Monitoring of the scored days: Evidently drift, realised performance, and alerts.

* ``reference``   -- a model version's reference sample (validation window, scored), cached once
  per version under ``monitoring/reference/`` in the lakehouse;
* ``drift``       -- one day vs a reference with Evidently 0.7 (per feature, share, prediction);
* ``daily``       -- a range of scored days -> ``monitoring.drift_metrics`` + an HTML report a day;
* ``performance`` -- matured days -> ``monitoring.performance`` (PR-AUC, recall at precision);
* ``alerts``      -- drifted/degraded days newer than a cursor, for the drift sensor;
* ``tables``      -- table names, schemas and the idempotent day-range writes.

Nothing here imports Dagster; Evidently is imported only when drift is computed.
"""
