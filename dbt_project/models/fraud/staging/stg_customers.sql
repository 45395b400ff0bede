-- The latest customer snapshot.
select
    cast(customer_id as varchar)  as customer_id,
    cast(snapshot_date as date)   as snapshot_date,
    cast(signup_date as date)     as signup_date,
    cast(home_country as varchar) as home_country,
    cast(segment as varchar)      as segment,
    cast(birth_year as bigint)    as birth_year
from {{ source('silver', 'customers') }}
