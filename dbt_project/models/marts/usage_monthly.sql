{{ config(materialized='incremental', pre_hook="{{ delete_build_days(this, 'period', 'month') }}") }}

{{ usage_aggregate('period', 'period') }}
