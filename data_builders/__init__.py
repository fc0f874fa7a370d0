"""data_builders: synthetic scene text, real dataset readers, and the conversation builder, all to one record format."""
