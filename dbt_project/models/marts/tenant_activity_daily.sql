{#- Every event of a tenant per day, whatever its type: whether a tenant was active at all. -#}

select
    tenant_id,
    usage_date,
    cast(count(*) as bigint) as events
from {{ ref('events_in_scope') }}
group by tenant_id, usage_date
