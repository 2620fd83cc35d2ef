{{ config(
    materialized='incremental',
    pre_hook="{{ delete_build_days(this, 'usage_date') }}"
) }}

{#- The distinct values a UNIQUE_COUNT metric saw each day: a month's count is the distinct
    values over its days (not the sum of the days' counts). Incremental over the build's
    days (macros/build_days.sql). -#}

select distinct
    tenant_id,
    metric,
    usage_date,
    period,
    value_text
from {{ ref('metric_events') }}
where aggregation = 'UNIQUE_COUNT'
    and value_text is not null
    and {{ in_build_days('usage_date') }}
