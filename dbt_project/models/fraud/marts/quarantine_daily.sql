{#-
  Data quality per landing date x rule: how many transaction rows each contract rule rejected,
  next to the rows that made it to silver, for a bad-share chart. A clean day gets one row with
  rule 'none' and zero rejects, so the chart shows zeros rather than gaps.
-#}
{{ config(lakehouse_table='gold.quarantine_daily') }}

with quarantined as (
    select date, rule, count(*) as quarantined_rows
    from {{ ref('stg_quarantine_transactions') }}
    group by date, rule
),

quarantined_by_day as (
    select date, sum(quarantined_rows) as day_quarantined_rows
    from quarantined
    group by date
),

silver_by_day as (
    select date, count(*) as silver_rows
    from {{ ref('stg_transactions') }}
    group by date
),

days as (
    select date from silver_by_day
    union
    select date from quarantined_by_day
),

per_rule as (
    select d.date, coalesce(q.rule, 'none') as rule, coalesce(q.quarantined_rows, 0) as quarantined_rows
    from days as d
    left join quarantined as q on d.date = q.date
)

select
    r.date,
    r.rule,
    cast(r.quarantined_rows as bigint)                          as quarantined_rows,
    cast(coalesce(qd.day_quarantined_rows, 0) as bigint)        as day_quarantined_rows,
    cast(coalesce(s.silver_rows, 0) as bigint)                  as silver_rows,
    cast(r.quarantined_rows as double)
        / nullif(coalesce(s.silver_rows, 0) + coalesce(qd.day_quarantined_rows, 0), 0)
                                                                as bad_share,
    cast(coalesce(qd.day_quarantined_rows, 0) as double)
        / nullif(coalesce(s.silver_rows, 0) + coalesce(qd.day_quarantined_rows, 0), 0)
                                                                as day_bad_share
from per_rule as r
left join quarantined_by_day as qd on r.date = qd.date
left join silver_by_day as s on r.date = s.date
