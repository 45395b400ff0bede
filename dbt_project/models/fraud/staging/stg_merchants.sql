-- The latest merchant snapshot.
select
    cast(merchant_id as varchar)       as merchant_id,
    cast(snapshot_date as date)        as snapshot_date,
    cast(merchant_name as varchar)     as merchant_name,
    cast(merchant_category as varchar) as merchant_category,
    cast(country as varchar)           as merchant_country
from {{ source('silver', 'merchants') }}
