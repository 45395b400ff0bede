-- Silver transactions of the run's date window only (vars start_date/end_date; all dates when
-- unset): the source itself is loaded for the window, the filter repeats it so the rows selected
-- and the range the plugin replaces can never disagree. For the date-partitioned marts.
select {{ transaction_columns() }}
from {{ source('silver_window', 'transactions') }}
where {{ slipway_window_filter('date') }}
