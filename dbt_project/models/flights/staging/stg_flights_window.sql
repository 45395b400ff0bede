-- Silver flights of the run's date window (all dates when unset): the source is loaded for the
-- window and the filter repeats it, so the rows selected and the dates the plugin replaces agree.
select
    cast(date as date)                      as date,
    cast(flight_id as varchar)              as flight_id,
    cast(scheduled_departure as timestamptz) as scheduled_departure,
    cast(carrier as varchar)                as carrier,
    cast(flight as bigint)                  as flight,
    cast(tailnum as varchar)                as tailnum,
    cast(origin as varchar)                 as origin,
    cast(dest as varchar)                   as dest,
    cast(distance as double)                as distance,
    cast(sched_arr_time as bigint)          as sched_arr_time,
    cast(dep_time as bigint)                as dep_time,
    cast(dep_delay as double)               as dep_delay,
    cast(arr_time as bigint)                as arr_time,
    cast(arr_delay as double)               as arr_delay,
    cast(air_time as double)                as air_time
from {{ source('flights_silver_window', 'flights') }}
where {{ slipway_window_filter('date') }}
