{#-
  Model health per scored day and model version: the share of drifted features, prediction drift,
  which features drifted, and (once labels matured) PR-AUC against the model's validation figure.
  One place for a "how is the model doing" chart or alert rule in any BI tool.
-#}
{{ config(lakehouse_table='gold.drift_daily', tags=['monitoring']) }}

with drift as (
    select
        date,
        model_name,
        model_version,
        max(case when metric = 'drift_share' then statistic end)          as drift_share,
        coalesce(bool_or(metric = 'drift_share' and drifted), false)      as day_drifted,
        max(case when metric = 'prediction_drift' then statistic end)     as prediction_drift,
        coalesce(bool_or(metric = 'prediction_drift' and drifted), false) as prediction_drifted,
        count(*) filter (where metric = 'value_drift' and drifted)        as drifted_features,
        string_agg(
            case when metric = 'value_drift' and drifted then feature end, ', ' order by feature
        )                                                                 as drifted_feature_list
    from {{ source('monitoring', 'drift_metrics') }}
    group by date, model_name, model_version
),

performance as (
    select date, model_name, model_version, status, pr_auc, recall_at_precision, pr_auc_drop, degraded
    from {{ source('monitoring', 'performance') }}
)

select
    cast(drift.date as date)                  as date,
    drift.model_name,
    cast(drift.model_version as bigint)       as model_version,
    drift.drift_share,
    drift.day_drifted,
    drift.prediction_drift,
    drift.prediction_drifted,
    cast(drift.drifted_features as bigint)    as drifted_features,
    drift.drifted_feature_list,
    performance.status                        as performance_status,
    performance.pr_auc,
    performance.recall_at_precision,
    performance.pr_auc_drop,
    coalesce(performance.degraded, false)     as degraded
from drift
left join performance using (date, model_name, model_version)
