{#- Every event of a tenant per day, whatever its type: whether a tenant was active at all. -#}

{{ config(materialized='incremental', pre_hook="{{ delete_build_days(this, 'usage_date') }}") }}

select
    tenant_id,
    usage_date,
    cast(count(*) as bigint) as events
from {{ ref('events_in_scope') }}
where {{ in_build_days('usage_date') }}
group by tenant_id, usage_date
