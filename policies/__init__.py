"""datamesh's policy pack: rules in ``rules``, the Pulumi adapter in ``pack``."""
