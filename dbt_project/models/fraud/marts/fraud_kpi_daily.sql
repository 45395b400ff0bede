{#-
  Fraud KPIs per transaction date x channel x country, rebuilt in full every run: chargebacks
  arrive days after the transaction, so any past day can change. `labels_matured` says whether a
  day is old enough (7 days before the latest transaction date) for its fraud rate to be final.
-#}
{{ config(lakehouse_table='gold.fraud_kpi_daily') }}

with transactions as (
    select * from {{ ref('stg_transactions') }}
),

-- one row per charged-back transaction, however many times it was reported
charged_back as (
    select transaction_id, min(reported_at) as first_reported_at
    from {{ ref('stg_chargebacks') }}
    group by transaction_id
),

latest as (
    select max(date) as latest_date from transactions
)

select
    t.date,
    t.channel,
    t.country,
    cast(count(*) as bigint)                                              as transactions,
    cast(sum(t.amount_eur) as double)                                     as amount_eur,
    cast(count(cb.transaction_id) as bigint)                              as chargebacks,
    cast(coalesce(sum(case when cb.transaction_id is not null then t.amount_eur end), 0) as double)
                                                                          as chargeback_amount_eur,
    cast(count(cb.transaction_id) as double) / count(*)                   as fraud_rate,
    cast(t.date + interval 7 day as date) <= any_value(l.latest_date)     as labels_matured
from transactions as t
left join charged_back as cb on t.transaction_id = cb.transaction_id
cross join latest as l
group by t.date, t.channel, t.country
