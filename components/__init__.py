"""datamesh's Pulumi components; ``config`` parses the stack configuration they take."""
