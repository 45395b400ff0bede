{#- The typed columns of a silver transaction, shared by the all-dates and the windowed staging
    models so the two can never drift apart. -#}
{% macro transaction_columns() %}
    cast(date as date)                  as date,
    cast(transaction_id as varchar)     as transaction_id,
    cast(event_time as timestamptz)     as event_time,
    cast(received_at as timestamptz)    as received_at,
    cast(customer_id as varchar)        as customer_id,
    cast(merchant_id as varchar)        as merchant_id,
    cast(amount as double)              as amount,
    cast(currency as varchar)           as currency,
    cast(channel as varchar)            as channel,
    cast(country as varchar)            as country,
    cast(merchant_category as varchar)  as merchant_category,
    cast(device_id as varchar)          as device_id,
    cast(amount_eur as double)          as amount_eur
{% endmacro %}
