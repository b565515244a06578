"""Training the embedded models: the shared loop (`loop`: seeded, resumable, time-bounded) and the recipes
that `bitmark train KIND` runs (`recipes`)."""
