-- Reported chargebacks: `date` is the day the chargeback was reported.
select
    cast(date as date)              as reported_date,
    cast(transaction_id as varchar) as transaction_id,
    cast(reported_at as timestamptz) as reported_at,
    cast(fraud_type as varchar)     as fraud_type
from {{ source('silver', 'chargebacks') }}
