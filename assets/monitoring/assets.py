"""Monitoring assets: Evidently drift of every scored day, and realised performance once labels
matured, both stored as Delta metric tables with the HTML reports linked from the UI.

Thin on purpose: each asset calls one function of ``slipway.monitoring`` for its partition range
and turns the result into metadata. The drift check is non-blocking (WARN): drift is a reason to
look and, through the drift sensor, to retrain; it must not stop the rest of the graph.
"""

import base64

import dagster as dg
import pandas as pd

from assets.lib.keys import asset_key, scoped_name, table_key
from assets.lib.metadata import (
    add_partition_metadata,
    data_version,
    day_rows,
    preview,
    range_written,
)
from assets.lib.partitions import daily_partitions, partition_dates
from assets.lib.resources import LakehouseResource
from assets.lib.retries import REMOTE_RETRY_POLICY, retry_transient_only
from assets.scoring.assets import predictions_key
from slipway.lakehouse import Lakehouse
from slipway.monitoring.alerts import contract_failures, drift_check
from slipway.monitoring.charts import drift_share_png
from slipway.monitoring.daily import DriftRun, monitor_drift
from slipway.monitoring.performance import evaluate_performance, labels_table
from slipway.monitoring.tables import DRIFT_METRICS, read_days
from slipway.usecase import UseCase

MONITORING = "monitoring"


def drift_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "monitoring", "drift")


def performance_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "monitoring", "performance")


def _number(value) -> float:
    """A metric for the UI: rounded, NaN (not computable that day) as -1."""
    return -1.0 if value is None or pd.isna(value) else round(float(value), 4)


def _file_url(uri: str) -> str:
    return uri if "://" in uri else f"file://{uri}"


def _days_table(run: DriftRun) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "date": str(d.date),
                "model_version": d.model_version,
                "rows": d.rows,
                "sample": d.sample_size,
                "drift_share": round(d.outcome.share, 3),
                "day_drifted": d.outcome.dataset_drift,
                "prediction_drift": round(d.outcome.prediction.statistic, 4)
                if d.outcome.prediction
                else None,
                "drifted_features": ", ".join(d.outcome.drifted_features),
                "report": d.report_uri,
            }
            for d in run.days
        ]
    )


def _chart(lakehouse: Lakehouse, usecase: UseCase) -> tuple[str | None, str | None]:
    """The drift-share history of the model as markdown (inline PNG) and the stored PNG's URI."""
    spec = usecase.model
    assert spec is not None
    history = read_days(lakehouse, DRIFT_METRICS).to_pandas()
    history = history[history["model_name"] == spec.name]
    png = drift_share_png(
        history, usecase.monitoring.drift_share, f"{spec.name}: share of drifted features per day"
    )
    if png is None:
        return None, None
    uri = lakehouse.write_bytes(f"reports/monitoring/{spec.name}/drift_share.png", png)
    encoded = base64.b64encode(png).decode()
    return f"![drift share per day](data:image/png;base64,{encoded})", uri


def monitoring_definitions(usecase: UseCase) -> tuple[list, list]:
    spec = usecase.model
    assert spec is not None
    mon = usecase.monitoring
    DRIFT_KEY, PERFORMANCE_KEY = drift_key(usecase), performance_key(usecase)
    PREDICTIONS_KEY = predictions_key(usecase)

    @dg.asset(
        key=DRIFT_KEY,
        deps=[PREDICTIONS_KEY],
        group_name=scoped_name(usecase, MONITORING),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Re-scoring a day (a new champion, a backfill) re-measures its drift without anyone asking.
        automation_condition=dg.AutomationCondition.eager(),
        kinds={"evidently", "delta"},
        description=(
            f"Evidently drift of each scored day (a {mon.sample_size}-row seeded sample of "
            f"`scoring.inputs`) against the champion's reference ({mon.reference_size} rows of the "
            f"last {mon.reference_days or 'all'} days of its training window), per feature (with "
            "the declared per-feature tests and multi-day windows) and for the score; the day "
            f"drifts at a drifted share "
            f"of {mon.drift_share} or on prediction drift. Rows in `{DRIFT_METRICS}`, an HTML "
            "report per day under `reports/monitoring/`."
        ),
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def drift(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = lakehouse.get(usecase.name)
        run = monitor_drift(lakehouse, usecase, start, end, run_id=context.run.run_id)
        failed = contract_failures(lakehouse, usecase, {d.date for d in run.days})
        for day, reason in sorted(failed.items()):
            context.log.warning(f"{day}: {reason}; its drift will not raise an alert")
        chart_md, chart_uri = _chart(lakehouse, usecase)
        days = _days_table(run)
        last = run.days[-1] if run.days else None
        counts = lakehouse.rows_per_date(
            run.written.name, (start, end), version=run.written.version
        )
        by_day: dict = {}
        for d in run.days:  # a day scored by two champions has one entry per version
            by_day.setdefault(d.date, []).append(d)

        def day_figures(day):
            measured = by_day.get(day, [])
            return {
                **day_rows(counts, day),
                "scored_rows": sum(d.rows for d in measured),
                "drifted": any(d.outcome.drifted for d in measured),
                "drift_share": round(max((d.outcome.share for d in measured), default=0.0), 4),
                "drifted_features": dg.MetadataValue.json(
                    sorted({f for d in measured for f in d.outcome.drifted_features})
                ),
                "day_reports": dg.MetadataValue.json([d.report_uri for d in measured]),
            }

        add_partition_metadata(context, day_figures)
        metadata = {
            **range_written(run.written, start, end),
            "days_monitored": len(run.days),
            "days_without_scores": dg.MetadataValue.json([str(d) for d in run.empty_days]),
            "drifted_days": dg.MetadataValue.json(
                [str(d.date) for d in run.days if d.outcome.drifted]
            ),
            "contract_failed_days": dg.MetadataValue.json({str(k): v for k, v in failed.items()}),
            "last_day_drift_share": round(last.outcome.share, 4) if last else 0.0,
            "max_drift_share": round(max((d.outcome.share for d in run.days), default=0.0), 4),
            "days": preview(days.drop(columns=["report"]), 31),
            "reports": dg.MetadataValue.md(
                "\n".join(f"- {d.date} v{d.model_version}: `{d.report_uri}`" for d in run.days)
                or "_no reports_"
            ),
            "read_versions": dg.MetadataValue.json(run.read_versions),
            "references": dg.MetadataValue.json(
                {
                    f"v{v}": {
                        "uri": r.uri,
                        "rows": r.size,
                        "window": list(r.window),
                        "training_window": list(r.training_window),
                        "validation_window": list(r.validation_window),
                        "training_set": r.training_set,
                        "built_now": r.built_now,
                    }
                    for v, r in run.references.items()
                }
            ),
        }
        if last:
            metadata["report_path"] = dg.MetadataValue.path(last.report_uri)
            metadata["report_url"] = dg.MetadataValue.url(_file_url(last.report_uri))
        if chart_md and chart_uri:
            metadata["drift_share_chart"] = dg.MetadataValue.md(chart_md)
            metadata["drift_share_png"] = dg.MetadataValue.path(chart_uri)
        return dg.MaterializeResult(metadata=metadata, data_version=data_version(run.written))

    @dg.asset_check(
        asset=DRIFT_KEY,
        name="no_drift",
        blocking=False,
        description=(
            f"Warns when a monitored day drifted (share of drifted features >= {mon.drift_share} "
            "or prediction drift) and names the drifted features."
        ),
    )
    def no_drift(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
    ) -> dg.AssetCheckResult:
        verdict = drift_check(lakehouse.get(usecase.name), usecase, context.run.run_id)
        return dg.AssetCheckResult(
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=verdict.description[:2000],
            metadata={
                "days_checked": verdict.days_checked,
                "days_not_judged": verdict.not_judged,
                "drifted_features": dg.MetadataValue.json(verdict.drifted_features),
            },
        )

    @dg.asset(
        key=PERFORMANCE_KEY,
        deps=[PREDICTIONS_KEY, table_key(usecase, labels_table(usecase))],
        group_name=scoped_name(usecase, MONITORING),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"lightgbm", "delta"},
        description=(
            f"Positives caught at the champion's validation operating threshold (precision "
            f"{spec.precision_target}) on each day whose labels matured "
            f"({usecase.label.maturity_days} days), tested against its validation recall for the "
            f"day's number of positives (degraded at p < {mon.performance_alpha} and a recall "
            f"{mon.min_recall_drop} below); PR-AUC shown against a median validation day. Days "
            "not yet matured are skipped (re-run them later)."
        ),
        retry_policy=REMOTE_RETRY_POLICY,
    )
    @retry_transient_only
    def performance(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = lakehouse.get(usecase.name)
        run = evaluate_performance(lakehouse, usecase, start, end, run_id=context.run.run_id)
        note = (
            f"{len(run.skipped)} day(s) skipped: labels not matured (latest "
            f"{labels_table(usecase)} day {run.latest_label_day}, matured until {run.matured_until})"
            if run.skipped
            else "every day of the range evaluated"
        )
        frame = pd.DataFrame(run.rows)
        shown = (
            frame[
                [
                    "date",
                    "model_version",
                    "status",
                    "rows",
                    "positives",
                    "caught",
                    "recall_at_threshold",
                    "reference_recall_at_threshold",
                    "p_value",
                    "pr_auc",
                    "reference_pr_auc",
                    "degraded",
                ]
            ]
            if not frame.empty
            else frame
        )
        rows_by_day: dict = {}
        for r in run.rows:  # a day scored by two champions is judged once per version
            rows_by_day.setdefault(r["date"], []).append(r)

        def day_figures(day):
            judged = rows_by_day.get(day, [])
            return {
                "dagster/row_count": len(judged),
                "status": ", ".join(r["status"] for r in judged)
                or "not judged (labels not matured)",
                "degraded": any(bool(r["degraded"]) for r in judged),
                "judgements": dg.MetadataValue.json(
                    [
                        {
                            "model_version": int(r["model_version"]),
                            "status": r["status"],
                            "positives": int(r["positives"]),
                            "caught": int(r["caught"]),
                            "recall_at_threshold": _number(r["recall_at_threshold"]),
                            "pr_auc": _number(r["pr_auc"]),
                        }
                        for r in judged
                    ]
                ),
            }

        add_partition_metadata(context, day_figures)
        metadata = {
            "range_rows_written": len(run.rows),
            "range_start": start.isoformat(),
            "range_end": end.isoformat(),
            "evaluated_days": dg.MetadataValue.json([str(d) for d in run.evaluated_days]),
            "skipped_days": dg.MetadataValue.json([str(d) for d in run.skipped]),
            "note": note,
            "latest_label_day": str(run.latest_label_day),
            "degraded_days": dg.MetadataValue.json([str(r["date"]) for r in run.degraded]),
            "days": preview(shown.round(4) if not shown.empty else shown, 31),
            "read_versions": dg.MetadataValue.json(run.read_versions),
        }
        if run.written is not None:
            metadata.update(range_written(run.written, start, end))
        return dg.MaterializeResult(
            metadata=metadata,
            data_version=data_version(run.written) if run.written is not None else None,
        )

    return [drift, performance], [no_drift]
