{#-
  One row per scheduled departure: the flights use case's examples. The schedule (what the model
  may read: route, carrier, local hour and weekday of the scheduled departure, distance) beside
  the outcome (dep_time, arr_delay: the label's columns, never features). Date-partitioned by
  local day: run for a window, it replaces exactly those dates in gold.flight_examples.
-#}
{{ config(
    tags=['daily'],
    lakehouse_table='gold.flight_examples',
    delta_partition_by=['date'],
    replace_dates=slipway_window(),
) }}

with flights as (
    select * from {{ ref('stg_flights_window') }}
),

airlines as (
    select * from {{ ref('stg_airlines') }}
),

airports as (
    select * from {{ ref('stg_airports') }}
)

select
    f.date,
    f.flight_id,
    f.scheduled_departure,
    f.origin || '-' || f.dest                                             as route,
    f.carrier,
    f.origin,
    f.tailnum,
    -- the model's categorical inputs, apart from the join keys Feast looks features up by
    f.carrier                                                             as carrier_code,
    f.origin                                                              as origin_code,
    f.dest,
    f.flight,
    f.distance,
    -- the schedule is published in New York time: hour and weekday are taken there
    cast(extract(hour from timezone('America/New_York', f.scheduled_departure)) as integer)
                                                                          as sched_dep_hour,
    cast(isodow(timezone('America/New_York', f.scheduled_departure)) as integer)
                                                                          as day_of_week,
    f.sched_arr_time,
    f.dep_time,
    f.dep_delay,
    f.arr_time,
    f.arr_delay,
    f.air_time,
    a.carrier_name,
    d.airport_name                                                        as dest_name,
    d.tzone                                                               as dest_tzone
-- left joins: a flight whose carrier or destination is missing from a snapshot stays (with
-- nulls); the relationships test on carrier flags it
from flights as f
left join airlines as a on f.carrier = a.carrier
left join airports as d on f.dest = d.faa
