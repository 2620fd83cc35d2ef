{{ config(materialized='incremental', pre_hook="{{ delete_build_days(this, 'usage_date', 'day') }}") }}

{{ usage_aggregate('usage_date', 'usage_date') }}
