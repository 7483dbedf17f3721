"""AWS kit: network, object store and the provider they share."""
