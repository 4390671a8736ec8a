"""One module per DVC stage: a pure function doing the work plus a thin `main()` reading params.yaml."""
