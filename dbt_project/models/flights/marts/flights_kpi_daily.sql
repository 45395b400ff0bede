{#-
  Per local day x origin x carrier: flights, cancellations, the share that arrived more than 15
  minutes late and the mean arrival delay. Date-partitioned like the examples.
-#}
{{ config(
    tags=['daily'],
    lakehouse_table='gold.flights_kpi_daily',
    delta_partition_by=['date'],
    replace_dates=slipway_window(),
) }}

select
    date,
    origin,
    carrier,
    cast(count(*) as bigint)                                              as flights,
    cast(count(*) - count(arr_delay) as bigint)                           as not_arrived,
    cast(sum(case when arr_delay > 15 then 1 else 0 end) as double)
        / nullif(count(arr_delay), 0)                                     as late_share,
    cast(avg(arr_delay) as double)                                        as mean_arr_delay
from {{ ref('stg_flights_window') }}
group by date, origin, carrier
