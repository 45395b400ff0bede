-- Silver transactions of the run's date window only (vars start_date/end_date; all dates when
-- unset): the source itself is loaded for the window, the filter repeats it so the rows selected
-- and the range the plugin replaces can never disagree. For the date-partitioned marts.
select
    cast(date as date)                  as date,
    cast(transaction_id as varchar)     as transaction_id,
    cast(event_time as timestamptz)     as event_time,
    cast(customer_id as varchar)        as customer_id,
    cast(merchant_id as varchar)        as merchant_id,
    cast(amount as double)              as amount,
    cast(currency as varchar)           as currency,
    cast(channel as varchar)            as channel,
    cast(country as varchar)            as country,
    cast(merchant_category as varchar)  as merchant_category,
    cast(device_id as varchar)          as device_id,
    cast(amount_eur as double)          as amount_eur
from {{ source('silver_window', 'transactions') }}
where {{ slipway_window_filter('date') }}
