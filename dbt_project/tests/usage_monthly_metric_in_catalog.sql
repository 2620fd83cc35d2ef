{#- Every metric in usage_monthly is a metric of the catalog (relationships to kind = 'metric'). -#}
{{ config(meta={'dagster': {'ref': {'name': 'usage_monthly'}}}) }}

select usage_monthly.tenant_id, usage_monthly.metric, usage_monthly.period
from {{ ref('usage_monthly') }} as usage_monthly
left join {{ source('licensing', 'catalog') }} as metrics
    on metrics.kind = 'metric'
    and metrics.name = usage_monthly.metric
where metrics.name is null
