-- Transaction rows rejected by the silver contract; `rule` is the first rule each row broke.
select
    cast(date as date)                as date,
    cast(stream as varchar)           as stream,
    cast(record_key as varchar)       as record_key,
    cast(source_file as varchar)      as source_file,
    cast(source_line as bigint)       as source_line,
    cast(rule as varchar)             as rule,
    cast("column" as varchar)         as failed_column,
    cast(quarantined_at as timestamptz) as quarantined_at
from {{ source('quarantine', 'transactions') }}
