{{ usage_aggregate('period', 'period') }}
