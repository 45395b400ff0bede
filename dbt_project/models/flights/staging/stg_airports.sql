-- The latest airports snapshot.
select
    cast(faa as varchar)   as faa,
    cast(name as varchar)  as airport_name,
    cast(tzone as varchar) as tzone
from {{ source('flights_silver', 'airports') }}
