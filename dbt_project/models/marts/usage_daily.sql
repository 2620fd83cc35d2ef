{{ usage_aggregate('usage_date', 'usage_date') }}
