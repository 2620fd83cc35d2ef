"""The compliance dashboard: one static page of where the business stands, for the people who never open Dagster."""
