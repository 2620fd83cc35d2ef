{#- Events by the region that processed them (data.region), per tenant and day. -#}

{{ config(materialized='incremental', pre_hook="{{ delete_build_days(this, 'usage_date') }}") }}

{{ daily_events_by('region') }}
