"""Reports over the pipeline's own history: the success metrics of the licensing programme."""
