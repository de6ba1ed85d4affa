"""adadim.training: data, models, losses, the weight controller, the loop and the CLI."""
