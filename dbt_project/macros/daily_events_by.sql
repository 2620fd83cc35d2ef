{#- Events per tenant and day by one column of events_in_scope (feature, region): the events
    that leave it empty are not counted. Only the build's days (macros/build_days.sql): the
    models are incremental over them. -#}

{% macro daily_events_by(column) -%}
select
    tenant_id,
    {{ column }},
    usage_date,
    cast(count(*) as bigint) as events
from {{ ref('events_in_scope') }}
where {{ in_build_days('usage_date') }}
    and {{ column }} is not null and {{ column }} <> ''
group by tenant_id, {{ column }}, usage_date
{%- endmacro %}
