"""adadim.sweeps: W&B sweep definitions (the YAML files here) and their launcher, online
through W&B or offline on one machine with the same YAML."""
