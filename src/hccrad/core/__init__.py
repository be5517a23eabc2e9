"""What every stage shares: config, seeds, labels, logs, versions, torch runtime, the plan."""
