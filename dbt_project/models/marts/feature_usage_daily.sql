{#- Events that name a feature (data.feature), per tenant and day. -#}

select
    tenant_id,
    feature,
    usage_date,
    cast(count(*) as bigint) as events
from {{ ref('events_in_scope') }}
where feature is not null and feature <> ''
group by tenant_id, feature, usage_date
