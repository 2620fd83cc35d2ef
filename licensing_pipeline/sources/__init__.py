"""Source assets: one per input of the data contract, plus the quarantine."""
