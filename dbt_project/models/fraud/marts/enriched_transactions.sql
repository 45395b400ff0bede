{#-
  Transactions with the customer and merchant context a fraud model and an analyst need.
  Date-partitioned: run for a window (vars start_date/end_date), it reads only that window of
  silver and the plugin replaces exactly those dates in gold.enriched_transactions, so a re-run is
  idempotent and other dates stay. Without vars it rebuilds every date.
-#}
{{ config(
    tags=['daily'],
    lakehouse_table='gold.enriched_transactions',
    delta_partition_by=['date'],
    replace_dates=slipway_window(),
) }}

with transactions as (
    select * from {{ ref('stg_transactions_window') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

merchants as (
    select * from {{ ref('stg_merchants') }}
)

select
    t.date,
    t.transaction_id,
    t.event_time,
    t.received_at,
    t.customer_id,
    t.merchant_id,
    t.amount,
    t.currency,
    t.amount_eur,
    t.channel,
    t.country,
    t.merchant_category,
    t.device_id,
    c.home_country,
    c.segment,
    c.signup_date,
    c.birth_year,
    m.merchant_name,
    m.merchant_country,
    -- null when the customer is unknown: "not known to be foreign" is not "domestic"
    (t.country <> c.home_country)                                         as is_foreign,
    -- event times are UTC; the hour and the tenure are taken in UTC whatever the session zone
    cast(extract(hour from timezone('UTC', t.event_time)) as integer)     as hour_of_day,
    cast(date_diff('day', c.signup_date, cast(timezone('UTC', t.event_time) as date)) as integer)
                                                                          as customer_tenure_days
-- left joins: a transaction whose customer or merchant is missing from the snapshot stays in the
-- mart (with nulls) and the relationships tests flag it, rather than silently disappearing
from transactions as t
left join customers as c on t.customer_id = c.customer_id
left join merchants as m on t.merchant_id = m.merchant_id
