-- Every silver transaction (all dates): rename/type only. For the full-refresh marts.
select {{ transaction_columns() }}
from {{ source('silver', 'transactions') }}
