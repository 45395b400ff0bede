"""Monitoring assets: Evidently drift of every scored day, and realised performance once labels
matured, both stored as Delta metric tables with the HTML reports linked from the UI.

Thin on purpose: each asset calls one function of ``slipway.monitoring`` for its partition range
and turns the result into metadata. The drift check is non-blocking (WARN): drift is a reason to
look and, through the drift sensor, to retrain; it must not stop the rest of the graph.
"""

import base64

import dagster as dg
import pandas as pd

from assets.lib.keys import asset_key, scoped_name
from assets.lib.metadata import preview, written
from assets.lib.partitions import daily_partitions, partition_dates
from assets.scoring.assets import predictions_key
from assets.training.assets import label_deps
from slipway.lakehouse import Lakehouse
from slipway.monitoring.alerts import contract_failures, training_window_end
from slipway.monitoring.charts import drift_share_png
from slipway.monitoring.daily import DriftRun, monitor_drift
from slipway.monitoring.performance import evaluate_performance
from slipway.monitoring.tables import (
    DRIFT_METRICS,
    DRIFT_SHARE,
    PREDICTION_DRIFT,
    VALUE_DRIFT,
    read_days,
)
from slipway.usecase import UseCase

MONITORING = "monitoring"


def drift_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "monitoring", "drift")


def performance_key(usecase: UseCase) -> dg.AssetKey:
    return asset_key(usecase, "monitoring", "performance")


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


def _drift_description(rows: pd.DataFrame) -> tuple[bool, str, dict[str, list[str]]]:
    """Whether no day drifted, a line per drifted day (then features drifting on quieter days),
    and the drifted features per day."""
    lines, by_day, quiet, ok = [], {}, {}, True
    for (day, version), group in rows.groupby(["date", "model_version"], sort=True):
        features = group[(group["metric"] == VALUE_DRIFT) & group["drifted"]]["feature"].tolist()
        by_day[f"{day} v{version}"] = features
        share = group[group["metric"] == DRIFT_SHARE]
        pred = group[group["metric"] == PREDICTION_DRIFT]
        day_drift, pred_drift = bool(share["drifted"].any()), bool(pred["drifted"].any())
        if not (day_drift or pred_drift):
            for f in features:
                quiet[f] = quiet.get(f, 0) + 1
            continue
        ok = False
        text = f"{day} v{version}: "
        if not share.empty:
            text += f"share {share['statistic'].iloc[0]:.2f}{' (day drifted)' if day_drift else ''}"
        if pred_drift:
            text += f"; prediction drift {pred['statistic'].iloc[0]:.4f}"
        lines.append(text + f"; features: {', '.join(features) or 'none'}")
    if quiet:
        lines.append(
            "below the day threshold: "
            + ", ".join(f"{f} ({n} d)" for f, n in sorted(quiet.items(), key=lambda x: -x[1]))
        )
    return ok, "\n".join(lines) or "no feature drifted", by_day


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
            f"`scoring.inputs`) against the champion's reference ({mon.reference_size} rows of its "
            f"validation window), per feature and for the score; the day drifts at a drifted share "
            f"of {mon.drift_share} or on prediction drift. Rows in `{DRIFT_METRICS}`, an HTML "
            "report per day under `reports/monitoring/`."
        ),
        required_resource_keys={"lakehouse"},
    )
    def drift(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = context.resources.lakehouse.get(usecase.name)
        run = monitor_drift(
            lakehouse, usecase, start, end, run_id=context.run.run_id, progress=context.log.info
        )
        failed = contract_failures(lakehouse, usecase, {d.date for d in run.days})
        for day, reason in sorted(failed.items()):
            context.log.warning(f"{day}: {reason}; its drift will not raise an alert")
        chart_md, chart_uri = _chart(lakehouse, usecase)
        days = _days_table(run)
        last = run.days[-1] if run.days else None
        metadata = {
            **written(run.written),
            "dagster/row_count": run.written.rows_written,
            "days_monitored": len(run.days),
            "days_without_scores": dg.MetadataValue.json([str(d) for d in run.empty_days]),
            "drifted_days": dg.MetadataValue.json(
                [str(d.date) for d in run.days if d.outcome.drifted]
            ),
            "contract_failed_days": dg.MetadataValue.json({str(k): v for k, v in failed.items()}),
            "drift_share": round(last.outcome.share, 4) if last else 0.0,
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
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset_check(
        asset=DRIFT_KEY,
        name="no_drift",
        blocking=False,
        description=(
            f"Warns when a monitored day drifted (share of drifted features >= {mon.drift_share} "
            "or prediction drift) and names the drifted features."
        ),
        required_resource_keys={"lakehouse"},
    )
    def no_drift(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        lakehouse = context.resources.lakehouse.get(usecase.name)
        rows = read_days(lakehouse, DRIFT_METRICS).to_pandas()
        rows = rows[rows["model_name"] == spec.name]
        checked = rows[rows["run_id"] == context.run.run_id]
        if checked.empty and not rows.empty:  # run on its own: judge the latest day
            checked = rows[rows["date"] == rows["date"].max()]
        # Days the model was trained on are its reference, not news (the same rule as the alerts):
        # the first days of a cold start differ from steady state and would warn on every backfill.
        trained_through = training_window_end(lakehouse, spec.name)
        inside = (
            checked[checked["date"] <= trained_through] if trained_through else checked.iloc[0:0]
        )
        checked = checked[checked["date"] > trained_through] if trained_through else checked
        ok, text, by_day = _drift_description(checked)
        if not inside.empty:
            text += f" ({inside['date'].nunique()} day(s) up to {trained_through} are inside the champion's training data: not judged)"
        return dg.AssetCheckResult(
            passed=ok,
            severity=dg.AssetCheckSeverity.WARN,
            description=text[:2000],
            metadata={
                "days_checked": int(checked[["date", "model_version"]].drop_duplicates().shape[0]),
                "drifted_features": dg.MetadataValue.json(by_day),
            },
        )

    @dg.asset(
        key=PERFORMANCE_KEY,
        deps=[PREDICTIONS_KEY, *label_deps(usecase)],
        group_name=scoped_name(usecase, MONITORING),
        partitions_def=daily_partitions(usecase),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"lightgbm", "delta"},
        description=(
            f"PR-AUC and recall at precision {spec.precision_target} of the champion's scores on "
            f"each day whose labels matured ({usecase.label.maturity_days} days), against its "
            f"validation figures; a drop above {mon.max_pr_auc_drop} is degraded. Days not yet "
            "matured are skipped (re-run them later)."
        ),
        required_resource_keys={"lakehouse"},
    )
    def performance(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        lakehouse = context.resources.lakehouse.get(usecase.name)
        run = evaluate_performance(
            lakehouse, usecase, start, end, run_id=context.run.run_id, progress=context.log.info
        )
        note = (
            f"{len(run.skipped)} day(s) skipped: labels not matured (latest "
            f"{usecase.label.stream} day {run.latest_label_day}, matured until {run.matured_until})"
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
                    "pr_auc",
                    "recall_at_precision",
                    "pr_auc_drop",
                    "degraded",
                ]
            ]
            if not frame.empty
            else frame
        )
        metadata = {
            "dagster/row_count": len(run.rows),
            "evaluated_days": dg.MetadataValue.json([str(d) for d in run.evaluated_days]),
            "skipped_days": dg.MetadataValue.json([str(d) for d in run.skipped]),
            "note": note,
            "latest_label_day": str(run.latest_label_day),
            "degraded_days": dg.MetadataValue.json([str(r["date"]) for r in run.degraded]),
            "days": preview(shown.round(4) if not shown.empty else shown, 31),
            "read_versions": dg.MetadataValue.json(run.read_versions),
        }
        if run.written is not None:
            metadata.update(written(run.written))
        return dg.MaterializeResult(metadata=metadata)

    return [drift, performance], [no_drift]


def definitions(usecase: UseCase) -> dg.Definitions:
    """Monitoring's definitions: drift and performance, with the drift check."""
    assets, checks = monitoring_definitions(usecase)
    return dg.Definitions(assets=assets, asset_checks=checks)
