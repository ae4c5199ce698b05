"""Docker: the docker builder (config, driver helpers, steps), its communicator, and the helpers
the docker-* post-processors share."""
