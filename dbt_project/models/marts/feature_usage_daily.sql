{#- Events that name a feature (data.feature), per tenant and day. -#}

{{ daily_events_by('feature') }}
