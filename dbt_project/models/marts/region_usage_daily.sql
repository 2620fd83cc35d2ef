{#- Events by the region that processed them (data.region), per tenant and day. -#}

select
    tenant_id,
    region,
    usage_date,
    cast(count(*) as bigint) as events
from {{ ref('events_in_scope') }}
where region is not null and region <> ''
group by tenant_id, region, usage_date
