"""pachon.pipelines."""
