{#- Events that name a feature (data.feature), per tenant and day. -#}

{{ config(materialized='incremental', pre_hook="{{ delete_build_days(this, 'usage_date') }}") }}

{{ daily_events_by('feature') }}
