"""Judge prompt templates of the OmniContext rubric (string.Template text, versioned by file name)."""
