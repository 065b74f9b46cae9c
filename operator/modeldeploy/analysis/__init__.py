"""Analysis providers: each answers one question, a number or a pass, for one metric."""
