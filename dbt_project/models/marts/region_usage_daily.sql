{#- Events by the region that processed them (data.region), per tenant and day. -#}

{{ daily_events_by('region') }}
