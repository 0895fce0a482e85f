"""Teaching aids: what the shell tells a person about their code as it runs."""
